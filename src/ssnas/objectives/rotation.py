"""Rotation prediction, the pretext task of UnNAS (Liu, Dollár, He, Girshick, Yuille, Xie,
"Are Labels Necessary for Neural Architecture Search?", ECCV 2020), after RotNet (Gidaris,
Singh, Komodakis, "Unsupervised Representation Learning by Predicting Image Rotations",
ICLR 2018).

Each image of the batch is shown at all four rotations (0, 90, 180, 270 degrees) in the
same step, as RotNet found best, and a linear classifier on the backbone features predicts
which. The labels come from the transform, so no annotation is used; a step costs 4 network
passes per image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives import OBJECTIVES
from ssnas.objectives.base import Batch, Objective, forward_features_of

ROTATIONS = 4


def rotated_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of each image and their labels.

    Args:
        images: (B, C, H, W) with H == W.

    Returns:
        (4B, C, H, W): the batch rotated counter-clockwise by 0, 90, 180 and 270 degrees,
        in that order; (4B,) int64 labels 0, 1, 2, 3 (quarter turns) in the same order.
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation needs square images, got {tuple(images.shape[-2:])}")
    layout = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    turned = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(ROTATIONS)])
    labels = torch.arange(ROTATIONS, device=images.device).repeat_interleave(images.shape[0])
    return turned.contiguous(memory_format=layout), labels


@OBJECTIVES.register("rotation")
class RotationPrediction(Objective):
    """`CE(Linear(D -> 4)(backbone(rot_k(views[0]))), k)` over k = 0..3 for every image."""

    view_recipe = "crop-flip"
    passes_per_image = ROTATIONS

    def __init__(self) -> None:
        super().__init__()
        self.classifier: nn.Module | None = None

    def setup(self, model: nn.Module, feature_dim: int, num_images: int) -> None:
        self.classifier = nn.Linear(feature_dim, ROTATIONS)

    def logits(self, model: nn.Module, images: torch.Tensor, **model_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(4B, 4) rotation logits of `images` (B, 3, H, W) at every rotation, and their (4B,) labels."""
        assert self.classifier is not None, "call setup() first"
        turned, labels = rotated_batch(images)
        return self.classifier(forward_features_of(model, turned, **model_kwargs)).float(), labels

    def forward(self, model: nn.Module, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        logits, labels = self.logits(model, batch.views[0], **model_kwargs)
        return F.cross_entropy(logits, labels)

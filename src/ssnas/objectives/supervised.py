"""Supervised reference objective: cross-entropy of a linear classifier on the features.

Not label-free; used for the supervised baseline and final evaluation. Only
views[0] is used (recipe "crop-flip": random crop with padding + horizontal flip).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives import OBJECTIVES
from ssnas.objectives.base import Batch, Objective, forward_features_of


@OBJECTIVES.register("supervised")
class Supervised(Objective):
    """`CE(Linear(D -> num_classes)(backbone(views[0])), labels)`."""

    view_recipe = "crop-flip"
    needs_labels = True
    passes_per_image = 1

    def __init__(self, num_classes: int = 10, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.classifier: nn.Module | None = None

    def setup(self, model: nn.Module, feature_dim: int, num_images: int) -> None:
        self.classifier = nn.Linear(feature_dim, self.num_classes)

    def forward(self, model: nn.Module, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        assert self.classifier is not None, "call setup() first"
        if batch.labels is None:
            raise ValueError("the supervised objective needs labels")
        logits = self.classifier(forward_features_of(model, batch.views[0], **model_kwargs))  # (B, C)
        return F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.label_smoothing)

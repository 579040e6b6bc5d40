"""The objective protocol: a batch of views in, a scalar loss out.

An objective is a small `nn.Module` that owns its heads (projector, predictor,
EMA target, memory bank). It calls `model.forward_features(view, **model_kwargs)`
so the same objective trains a standalone network (no kwargs) or one path of a
weight-sharing supernet (`arch=...`) or its mixture (`op_weights=...`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn


def forward_features_of(model: nn.Module, x: torch.Tensor, **model_kwargs: Any) -> torch.Tensor:
    """`model.forward_features(x, **model_kwargs)`: the (B, D) features of a network known only as
    an `nn.Module` (torch's stubs type such an attribute as `Tensor | Module`)."""
    return cast(Callable[..., torch.Tensor], model.forward_features)(x, **model_kwargs)


def feature_dim_of(model: nn.Module) -> int:
    """`model.feature_dim`, D of the (B, D) features, for a network known only as an `nn.Module`."""
    return cast(int, model.feature_dim)


@dataclass
class Batch:
    """One step's data.

    views:   list of V tensors, each (B,3,H,W) float, already augmented and normalised.
    index:   (B,) int64 positions of the images in the training set (memory banks use it).
    labels:  (B,) int64, or None when training without labels.
    """

    views: list[torch.Tensor]
    index: torch.Tensor
    labels: torch.Tensor | None = None


class Objective(nn.Module):
    """Base class; subclasses implement `forward` and may override the hooks.

    Attributes:
        view_recipe: name of the default augmentation recipe in `ssnas.data.views`.
        needs_labels: True only for the supervised reference objective.
        passes_per_image: backbone passes with gradients per image and step (views, rotations).
    """

    view_recipe: str = "simclr"
    needs_labels: bool = False
    passes_per_image: int = 2

    def setup(self, model: nn.Module, feature_dim: int, num_images: int) -> None:
        """Called once before training (build heads lazily, copy an EMA target, fill a bank)."""

    def forward(self, model: nn.Module, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        raise NotImplementedError

    def on_step_end(self, model: nn.Module, progress: float) -> None:
        """After each optimizer step; `progress` in [0, 1] over the whole run (EMA schedules)."""


def has_per_image_state(objective: Objective, num_images: int) -> bool:
    """True when the objective itself (not its heads or EMA target) holds a buffer with one
    row per training image, i.e. a memory bank indexed by `Batch.index`."""
    return any(b.ndim >= 1 and b.shape[0] == num_images for b in objective.buffers(recurse=False))

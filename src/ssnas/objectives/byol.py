"""BYOL (Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020).

Online network = backbone + projector + predictor; target = an EMA copy of
backbone + projector, never trained by gradients. The loss is `2 - 2 cos(p, z)`
between the online prediction of one view and the target projection of the
other, summed over both directions (the paper's symmetrised loss). The target's
momentum rises from `base_momentum` (0.99) to 1 with the cosine schedule.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives import OBJECTIVES
from ssnas.objectives.base import Batch, Objective, forward_features_of
from ssnas.objectives.heads import PredictionHead, ProjectionHead, cosine_momentum, update_momentum


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """`mean_i (2 - 2 cos(p_i, z_i))` for (B, D) predictions `p` and targets `z` (no grad to z)."""
    p = F.normalize(p.float(), dim=1)
    z = F.normalize(z.detach().float(), dim=1)
    return (2.0 - 2.0 * (p * z).sum(dim=1)).mean()


@OBJECTIVES.register("byol")
class BYOL(Objective):
    """BYOL with an EMA target made in `setup` (works for supernet paths via **model_kwargs)."""

    view_recipe = "byol"

    def __init__(
        self,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        pred_hidden_dim: int = 4096,
        base_momentum: float = 0.99,
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.pred_hidden_dim = pred_hidden_dim
        self.base_momentum = base_momentum
        self.momentum = base_momentum
        self.projector: nn.Module | None = None
        self.predictor: nn.Module | None = None
        self.target_model: nn.Module | None = None
        self.target_projector: nn.Module | None = None

    def setup(self, model: nn.Module, feature_dim: int, num_images: int) -> None:
        self.projector = ProjectionHead(feature_dim, self.hidden_dim, self.out_dim)
        self.predictor = PredictionHead(self.out_dim, self.pred_hidden_dim)
        self.target_model = copy.deepcopy(model)
        self.target_projector = copy.deepcopy(self.projector)
        for module in (self.target_model, self.target_projector):
            module.requires_grad_(False)

    def forward(self, model: nn.Module, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        assert self.projector is not None and self.predictor is not None, "call setup() first"
        assert self.target_model is not None and self.target_projector is not None
        v1, v2 = batch.views[0], batch.views[1]
        p1 = self.predictor(self.projector(forward_features_of(model, v1, **model_kwargs)))  # (B, out_dim)
        p2 = self.predictor(self.projector(forward_features_of(model, v2, **model_kwargs)))  # (B, out_dim)
        with torch.no_grad():
            z1 = self.target_projector(forward_features_of(self.target_model, v1, **model_kwargs))
            z2 = self.target_projector(forward_features_of(self.target_model, v2, **model_kwargs))
        return byol_loss(p1, z2) + byol_loss(p2, z1)

    def on_step_end(self, model: nn.Module, progress: float) -> None:
        assert self.target_model is not None and self.target_projector is not None
        assert self.projector is not None
        self.momentum = cosine_momentum(self.base_momentum, progress)
        update_momentum(model, self.target_model, self.momentum)
        update_momentum(self.projector, self.target_projector, self.momentum)

"""Projection / prediction MLPs and the EMA helpers (lightly-style bricks).

SimCLR (Chen et al. 2020) and BYOL (Grill et al. 2020) put a small MLP on top of
the backbone features; BYOL adds a predictor and an exponential-moving-average
target whose momentum follows a cosine schedule towards 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    """MLP `(B, in_dim) -> (B, out_dim)`: (Linear-BN-ReLU) x (num_layers-1), then Linear.

    With `last_bn=True` a BatchNorm without affine follows the last Linear (SimCLR v2 style).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        last_bn: bool = False,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        super().__init__(*layers)


class PredictionHead(ProjectionHead):
    """BYOL's predictor `(B, dim) -> (B, dim)`: Linear-BN-ReLU-Linear."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__(dim, hidden_dim, dim, num_layers=2, last_bn=False)


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, m: float) -> None:
    """EMA in place: `target = m * target + (1 - m) * online` for every parameter.

    Buffers (BatchNorm running statistics, counters) are copied from `online`.
    Both modules must have the same structure (the target is a deep copy). Computed as
    `lerp`, so a parameter equal on both sides (a frozen one) stays exactly equal.
    """
    for p_target, p_online in zip(target.parameters(), online.parameters(), strict=True):
        p_target.lerp_(p_online.detach(), 1.0 - m)
    for b_target, b_online in zip(target.buffers(), online.buffers(), strict=True):
        b_target.copy_(b_online)


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule: `1 - (1 - base) * (cos(pi * progress) + 1) / 2`; base at 0, 1.0 at 1."""
    progress = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0

"""Test-only bricks shared by the objective, loop and probe tests: a tiny conv
encoder meeting the network contract, a two-branch "supernet", and view makers
meeting the ViewMaker contract (no dependency on ssnas.data or ssnas.spaces)."""

from __future__ import annotations

import torch
from torch import nn


class TinyEncoder(nn.Module):
    """(B,3,H,W) -> (B, feature_dim): conv-BN-ReLU, stride-2 conv-BN-ReLU, global average pool.

    `forward_features(x, path=None)`: with `path` in {0, 1} only that second-layer
    branch runs (a two-path "supernet"); None sums both.
    """

    def __init__(self, width: int = 8, feature_dim: int = 16) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.branches = nn.ModuleList(
            nn.Conv2d(width, feature_dim, k, stride=2, padding=k // 2, bias=False) for k in (1, 3)
        )
        self.bn = nn.BatchNorm2d(feature_dim)

    def forward_features(self, x: torch.Tensor, path: int | None = None) -> torch.Tensor:
        h = self.stem(x)
        h = sum(b(h) for b in self.branches) if path is None else self.branches[path](h)
        return torch.relu(self.bn(h)).mean(dim=(2, 3))  # (B, feature_dim)


class FlipNoiseViews:
    """ViewMaker: `num_views` views, each a random horizontal flip plus Gaussian noise, normalised."""

    def __init__(self, num_views: int = 2, noise: float = 0.1) -> None:
        self.num_views = num_views
        self.noise = noise

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        x = (images.float() / 255.0 - 0.5) / 0.25  # (B,3,H,W)
        views = []
        for _ in range(self.num_views):
            flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
            v = torch.where(flip[:, None, None, None], x.flip(3), x)
            views.append(v + self.noise * torch.randn(x.shape, generator=generator, device=x.device))
        return views


def identity_view(images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """ViewMaker without augmentation (for feature extraction)."""
    return [(images.float() / 255.0 - 0.5) / 0.25]


def random_images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """(n,3,size,size) uint8."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)

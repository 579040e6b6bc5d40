"""MeCo: the minimum eigenvalue of the channel correlation of feature maps.

Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum
Eigenvalue of Correlation", NeurIPS 2023.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssnas.rating.registry import SIGNALS, features, forward_hooks

MECO_IMAGES = 1  # the paper's "one data": the first image of the rating batch


@SIGNALS.family("meco", ("meco",), "MeCo: sum over conv/BN outputs of the smallest channel-correlation eigenvalue")
@torch.no_grad()
def min_eigen_correlation(model: nn.Module, images: torch.Tensor, seed: int = 0, **forward_kwargs: Any) -> dict[str, float]:
    """Sum over Conv2d/BatchNorm2d outputs (C,H,W) of the smallest eigenvalue of the (C,C)
    correlation of the image's channels, averaged over the first `MECO_IMAGES` images;
    computed in float64 (a constant channel's NaN correlations count as 0)."""
    count = min(MECO_IMAGES, images.shape[0])
    totals = torch.zeros(count, dtype=torch.float64)

    def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            return
        for i in range(count):
            channels = output[i].reshape(output.shape[1], -1).double()  # (C, H*W)
            corr = torch.nan_to_num(torch.corrcoef(channels), nan=0.0, posinf=0.0, neginf=0.0)
            totals[i] += torch.linalg.eigvalsh(corr)[0].cpu()

    with forward_hooks(model, (nn.Conv2d, nn.BatchNorm2d), record):
        features(model, images[:count], **forward_kwargs)
    return {"meco": float(totals.mean())}

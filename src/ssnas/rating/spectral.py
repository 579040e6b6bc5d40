"""MeCo: the minimum eigenvalue of the channel correlation of feature maps.

Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum
Eigenvalue of Correlation", NeurIPS 2023.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssnas.rating.registry import SIGNALS, CannotRate, features, forward_hooks

MECO_IMAGES = 1  # the paper's "one data": the first image of the rating batch


@SIGNALS.family("meco", ("meco",), "MeCo: sum over conv/BN outputs of the smallest channel-correlation eigenvalue")
@torch.no_grad()
def min_eigen_correlation(model: nn.Module, images: torch.Tensor, seed: int = 0, **forward_kwargs: Any) -> dict[str, float]:
    """Sum over Conv2d/BatchNorm2d outputs (C,H,W) of the smallest eigenvalue of the (C,C)
    correlation of the image's channels, averaged over the first `MECO_IMAGES` images;
    computed in float64 (a constant channel's NaN correlations count as 0)."""
    count = min(MECO_IMAGES, images.shape[0])
    totals = torch.zeros(count, dtype=torch.float64)
    seen = 0

    def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal seen
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            return
        seen += 1
        for i in range(count):
            channels = output[i].reshape(output.shape[1], -1).double()  # (C, H*W)
            corr = torch.nan_to_num(torch.corrcoef(channels), nan=0.0, posinf=0.0, neginf=0.0)
            totals[i] += torch.linalg.eigvalsh(corr)[0].cpu()

    with forward_hooks(model, (nn.Conv2d, nn.BatchNorm2d), record):
        try:
            features(model, images[:count], **forward_kwargs)
        except ValueError as error:  # BN on batch statistics of one image with 1x1 maps (ResNets at 32x32)
            raise CannotRate(f"meco passes {count} image(s) through BN on batch statistics, which "
                             f"{type(model).__name__} refuses ({str(error).strip()}); "
                             "rate larger images (--image-size 64)") from None  # fmt: skip
    if not seen:
        raise CannotRate(f"meco reads Conv2d / BatchNorm2d feature maps (B,C,H,W); {type(model).__name__} runs none")
    return {"meco": float(totals.mean())}

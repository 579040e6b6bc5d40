"""Batch-norm recalibration for weight-sharing evaluation (any network).

A path of a supernet sees different BN statistics than the mixture it was trained in;
BossNAS (Li et al., ICCV 2021) and SPOS reset the running statistics and re-estimate them
on training images before rating each candidate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """All batch-norm layers of `model`, in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    images: torch.Tensor | Iterable[torch.Tensor],
    enable_tracking: bool = True,
    **forward_kwargs: Any,
) -> nn.Module:
    """Re-estimate every BN layer's running statistics, then leave `model` in eval mode.

    Resets the running mean/var, sets momentum to None (exact cumulative average over the
    given batches), runs `model(x, **forward_kwargs)` in train mode on each batch, restores
    each layer's momentum and calls `model.eval()`.

    Args:
        model: any network; `forward_kwargs` are passed through (e.g. `arch=` for a supernet).
        images: one float batch (B,3,H,W) or an iterable of batches.
        enable_tracking: BN layers built with `track_running_stats=False` (batch statistics
            only, the search-time default) get running buffers and start tracking, so that
            eval mode afterwards uses the recalibrated statistics. Their train-mode output is
            unchanged. With False such layers are left alone.

    Returns:
        `model`, in eval mode.
    """
    norms = batch_norms(model)
    momenta = [bn.momentum for bn in norms]
    device = next(model.parameters(), torch.empty(0)).device
    for bn in norms:
        if not bn.track_running_stats:
            if not enable_tracking:
                continue
            bn.register_buffer("running_mean", torch.zeros(bn.num_features, device=device))
            bn.register_buffer("running_var", torch.ones(bn.num_features, device=device))
            bn.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
            bn.track_running_stats = True
        bn.reset_running_stats()
        bn.momentum = None
    batches = [images] if isinstance(images, torch.Tensor) else images
    model.train()
    for batch in batches:
        model(batch, **forward_kwargs)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    return model.eval()

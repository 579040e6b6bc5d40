"""Model cost from module shapes: parameter counts and multiply-accumulates (MACs)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_macs(module: nn.Module, x: torch.Tensor, **forward_kwargs: Any) -> int:
    """Multiply-accumulates of every Conv2d and Linear in one forward of `x`, per sample.

    Conv2d: output elements x (C_in / groups) x kH x kW; Linear: in x out features
    (times the leading dims other than the batch). Pools, BN, activations and additions
    are not counted, matching the usual NAS "FLOPs" convention.
    """
    total = 0

    def conv_hook(conv: nn.Module, _: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(conv, nn.Conv2d)
        kh, kw = conv.kernel_size
        total += out[0].numel() * (conv.in_channels // conv.groups) * kh * kw

    def linear_hook(linear: nn.Module, _: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(linear, nn.Linear)
        total += out[0].numel() * linear.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = module.training
    try:
        module.eval()
        module(x, **forward_kwargs)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return total

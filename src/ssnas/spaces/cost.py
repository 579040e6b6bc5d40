"""Model cost from module shapes: parameter counts and multiply-accumulates (MACs)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_macs(module: nn.Module, x: torch.Tensor, **forward_kwargs: Any) -> int:
    """Multiply-accumulates of one eval-mode forward of `x` (B,3,H,W), per sample.

    Counted by torch's `FlopCounterMode` (every convolution, matrix product and attention product
    the forward runs; its FLOPs are 2 per multiply-accumulate), so attention's matmuls count as
    much as a convolution's (HyTra). Pools, BN, activations, additions and biases are not
    counted, the usual NAS "FLOPs" convention; on networks of Conv2d and Linear layers alone it
    equals the per-layer formula (output elements x C_in / groups x kH x kW; in x out features).
    """
    was_training = module.training
    try:
        module.eval()
        with FlopCounterMode(display=False) as counter:
            module(x, **forward_kwargs)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops()) // 2 // x.shape[0]

"""SynFlow, computed in float64 whatever the run's precision.

Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic
flow", NeurIPS 2020; as a NAS proxy Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021. R = sum of the features for an all-ones input through |weights| (BN on its
running statistics); SynFlow = sum over parameters of |theta * dR/dtheta|, reported as log10.

The flow grows geometrically with depth (about 1e50 for NB201's largest cell at C=16, N=5,
beyond float32's 3.4e38), so the pass runs in float64 and the sum is taken in log space.
Where even float64 overflows, the input is scaled down by 2^-k: for networks that are
positively homogeneous in their input (ReLU, convolutions, BN at initialisation) the flow
scales by the same factor, which is added back as k*log10(2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ssnas.rating.registry import SIGNALS, features

_RESCALE_STEPS = (0, 256, 512, 768)  # input scales 2^-k tried in turn while the flow is not finite


@SIGNALS.family("synflow", ("synflow",), "SynFlow: log10 sum |theta dR/dtheta| for an all-ones input through |weights|",
                data_free=True)  # fmt: skip
def synaptic_flow(model: nn.Module, images: torch.Tensor, seed: int = 0, **forward_kwargs: Any) -> dict[str, float]:
    """log10 SynFlow of `model` (only the shape of images (B,3,H,W) is used); weights (in float32),
    gradients and train/eval mode are restored afterwards."""
    saved = {name: tensor.clone() for name, tensor in model.state_dict().items() if tensor.is_floating_point()}
    was_training = model.training
    model.eval()  # BN on running statistics: the flow does not depend on data
    try:
        with torch.no_grad():
            model.double()
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.abs_()
        value = math.nan
        for steps in _RESCALE_STEPS:
            value = _log10_flow(model, images, steps, forward_kwargs)
            if math.isfinite(value):
                break
    finally:
        model.zero_grad(set_to_none=True)
        model.float()
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name in saved:
                    tensor.copy_(saved[name])
        model.train(was_training)
    return {"synflow": value}


def _log10_flow(model: nn.Module, images: torch.Tensor, steps: int, forward_kwargs: dict[str, Any]) -> float:
    model.zero_grad(set_to_none=True)
    ones = torch.full_like(images[:1], 2.0**-steps, dtype=torch.float64)  # (1,3,H,W)
    with torch.enable_grad():
        features(model, ones, **forward_kwargs).sum().backward()
    logs = [
        torch.log10((p.detach() * p.grad).abs().sum())
        for p in model.parameters() if p.grad is not None
    ]  # fmt: skip
    if not logs:
        return math.nan
    total = float(torch.logsumexp(torch.stack(logs) * math.log(10), dim=0) / math.log(10))
    return total + steps * math.log10(2) if math.isfinite(total) else math.nan

"""Activation-pattern signals: NASWOT, SWAP and the effective rank of the features.

References:
    NASWOT: Mellor et al., "Neural Architecture Search without Training", ICML 2021.
    SWAP: Peng et al., "SWAP-Score: A Training-Free NAS Proxy via Sample-Wise Activation
        Patterns", ICLR 2024 (without its size regulariser).
    Effective rank: Roy & Vetterli 2007; RankMe (Garrido et al., ICML 2023).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssnas.rating.registry import SIGNALS, CannotRate, activation_kinds, features, forward_hooks

# 62 samples per int64 word; words mixed by a multiplicative hash (wraps mod 2^64, collisions negligible)
_WORD = 62
_MIX = -7046029254386353131


@SIGNALS.family("activation-patterns", ("naswot", "swap"),
                "NASWOT log|K| of binary activation codes; SWAP log10 #distinct sample-wise patterns")  # fmt: skip
@torch.no_grad()
def activation_patterns(model: nn.Module, images: torch.Tensor, seed: int = 0, **forward_kwargs: Any) -> dict[str, float]:
    """NASWOT and SWAP from one forward pass over images (B,3,H,W).

    NASWOT: log|K|, K_ij = number of units (over the inputs of every ReLU-like module) on
    which images i and j agree (pre-activation > 0 or not). SWAP: log10 of the number of
    distinct (B,) on/off vectors among those units.
    """
    batch = images.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64, device=images.device)
    powers = 2 ** torch.arange(min(batch, _WORD), dtype=torch.int64, device=images.device)  # (<=62,)
    codes: list[torch.Tensor] = []

    def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        on = (inputs[0].detach().reshape(batch, -1) > 0).float()  # (B, units)
        active = on.sum(dim=1)  # (B,)
        # agreements = both on + both off = 2 c_i.c_j - s_i - s_j + units; exact in fp32 below 2^24 units
        kernel.add_((2 * (on @ on.T) - active[:, None] - active[None, :] + on.shape[1]).double())
        units = on.T.long()  # (units, B)
        code = torch.zeros(units.shape[0], dtype=torch.int64, device=units.device)
        for start in range(0, batch, _WORD):
            code = code * _MIX + units[:, start : start + _WORD] @ powers[: min(_WORD, batch - start)]
        codes.append(code)

    with forward_hooks(model, activation_kinds(model), record):
        features(model, images, **forward_kwargs)
    if not codes:
        raise CannotRate(f"naswot and swap read ReLU-like activation modules (nn.ReLU, nn.GELU, ...); "
                          f"{type(model).__name__} runs none")  # fmt: skip
    distinct = torch.unique(torch.cat(codes)).numel()
    return {"naswot": float(torch.linalg.slogdet(kernel)[1]), "swap": float(torch.log10(torch.tensor(float(distinct), dtype=torch.float64)))}


@SIGNALS.family("effective-rank", ("effective-rank",), "exp(entropy) of the singular values of the (B,D) features")
@torch.no_grad()
def effective_rank(model: nn.Module, images: torch.Tensor, seed: int = 0, **forward_kwargs: Any) -> dict[str, float]:
    """exp(entropy) of the normalised singular values of the centred (B,D) feature matrix."""
    output = features(model, images, **forward_kwargs).double()  # (B, D)
    output = output - output.mean(dim=0, keepdim=True)
    singular = torch.linalg.svdvals(output)
    p = singular / singular.sum().clamp_min(1e-12)
    return {"effective-rank": float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))}

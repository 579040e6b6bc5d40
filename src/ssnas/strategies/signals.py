"""Label-free rating signals for a network (or one supernet path). Higher = better.

Each function takes a module and a float image batch (B,3,H,W) plus the
`forward_kwargs` that select a supernet path (`arch=...`), and returns a float.
Hooks only fire on modules that actually run, so on a supernet they see only
the chosen path. No labels are used anywhere.

References:
    NASWOT: Mellor et al., "Neural Architecture Search without Training", ICML 2021.
    MeCo: Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass
        via Minimum Eigenvalue of Correlation", NeurIPS 2023.
    SynFlow: Tanaka et al. 2020; as a NAS proxy: Abdelfattah et al., ICLR 2021.
    Effective rank: Roy & Vetterli 2007; RankMe (Garrido et al., ICML 2023).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ssnas.registry import Registry

Signal = Callable[..., float]
SIGNALS: Registry[float] = Registry("signal")


@contextmanager
def _hooks(model: nn.Module, kinds: tuple[type[nn.Module], ...], hook: Callable[..., None]) -> Iterator[None]:
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@SIGNALS.register("effective-rank")
@torch.no_grad()
def effective_rank(model: nn.Module, images: torch.Tensor, **forward_kwargs: Any) -> float:
    """exp(entropy) of the normalised singular values of the (B,D) feature matrix."""
    features = model.forward_features(images, **forward_kwargs).float()  # (B, D)
    features = features - features.mean(dim=0, keepdim=True)
    singular = torch.linalg.svdvals(features)
    p = singular / singular.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return float(torch.exp(entropy))


@SIGNALS.register("naswot")
@torch.no_grad()
def activation_pattern_logdet(model: nn.Module, images: torch.Tensor, **forward_kwargs: Any) -> float:
    """NASWOT: log|K| with K_ij = #units on which images i and j agree (pre-activation > 0 or not),
    over every ReLU-like activation module (ReLU, ReLU6, SiLU, GELU)."""
    batch = images.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64, device=images.device)

    def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        codes = (inputs[0].detach().reshape(batch, -1) > 0).float()  # (B, units)
        active = codes.sum(dim=1)  # (B,)
        # agreements = both on + both off = 2 c_i.c_j - s_i - s_j + units; exact in fp32 below 2^24 units
        both_on = codes @ codes.T  # (B, B)
        kernel.add_((2 * both_on - active[:, None] - active[None, :] + codes.shape[1]).double())

    with _hooks(model, (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU), record):
        model.forward_features(images, **forward_kwargs)
    return float(torch.linalg.slogdet(kernel)[1])


@SIGNALS.register("meco")
@torch.no_grad()
def min_eigen_correlation(
    model: nn.Module, images: torch.Tensor, num_images: int = 1, **forward_kwargs: Any
) -> float:
    """MeCo: sum over conv/norm outputs of the smallest eigenvalue of the channel
    correlation matrix of one image's feature map; averaged over `num_images` images."""
    totals = torch.zeros(num_images, dtype=torch.float64)

    def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            return
        for i in range(num_images):
            channels = output[i].reshape(output.shape[1], -1).double()  # (C, H*W)
            corr = torch.nan_to_num(torch.corrcoef(channels), nan=0.0, posinf=0.0, neginf=0.0)
            totals[i] += torch.linalg.eigvalsh(corr)[0].cpu()

    with _hooks(model, (nn.Conv2d, nn.BatchNorm2d), record):
        model.forward_features(images[:num_images], **forward_kwargs)
    return float(totals.mean())


@SIGNALS.register("synflow")
def synaptic_flow(model: nn.Module, images: torch.Tensor, **forward_kwargs: Any) -> float:
    """SynFlow: sum |theta * dR/dtheta| with R = sum of the output for an all-ones input
    through |weights|; data-free (only the input shape is used). log10 of the sum."""
    signs = {}
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                signs[name] = torch.sign(tensor)
                tensor.abs_()
    was_training = model.training
    model.eval()  # BN in eval: running stats, so the flow is data-independent
    model.zero_grad(set_to_none=True)
    ones = torch.ones_like(images[:1], dtype=torch.float64)
    model.double()
    try:
        model.forward_features(ones, **forward_kwargs).sum().backward()
        total = sum(
            float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None
        )
    finally:
        model.float()
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name in signs:
                    tensor.mul_(signs[name])
        model.train(was_training)
    return float(torch.log10(torch.tensor(total + 1e-30)))


@SIGNALS.register("swap")
@torch.no_grad()
def sample_wise_activation_patterns(model: nn.Module, images: torch.Tensor, **forward_kwargs: Any) -> float:
    """SWAP (Peng et al., "SWAP-Score: A Training-Free NAS Proxy via Sample-Wise Activation
    Patterns", ICLR 2024), without the size regulariser: the number of distinct sample-wise
    patterns, i.e. of distinct (B,) on/off vectors over the batch, among all units (channel x
    position) at the inputs of ReLU-like modules. log10 of the count."""
    batch = images.shape[0]
    powers = 2 ** torch.arange(min(batch, 62), dtype=torch.int64, device=images.device)  # (<=62,)
    codes: list[torch.Tensor] = []

    def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        units = (inputs[0].detach().reshape(batch, -1) > 0).T.long()  # (units, B)
        code = torch.zeros(units.shape[0], dtype=torch.int64, device=units.device)
        for start in range(0, batch, 62):  # 62 samples per int64 word, words mixed by a multiplicative hash
            word = units[:, start : start + 62] @ powers[: min(62, batch - start)]
            code = code * -7046029254386353131 + word  # wraps mod 2^64; collisions are negligible
        codes.append(code)

    with _hooks(model, (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU), record):
        model.forward_features(images, **forward_kwargs)
    if not codes:
        return 0.0
    distinct = torch.unique(torch.cat(codes)).numel()
    return float(torch.log10(torch.tensor(float(distinct))))


# Signals computed together from one pass: the ranker asks the group once per network,
# the SIGNALS entries below (used on supernet paths) pick their own column.
from ssnas.strategies.az_nas import AZ_COLUMNS, az_nas_proxies  # noqa: E402
from ssnas.strategies.ssl_gradients import SSL_GRADIENT_COLUMNS, ssl_gradient_proxies  # noqa: E402

SignalGroup = Callable[..., dict[str, float]]
SIGNAL_GROUPS: dict[str, SignalGroup] = {
    **{name: az_nas_proxies for name in AZ_COLUMNS},
    **{name: ssl_gradient_proxies for name in SSL_GRADIENT_COLUMNS},
}


def _column_of(name: str, group: SignalGroup) -> Signal:
    def signal(model: nn.Module, images: torch.Tensor, **forward_kwargs: Any) -> float:
        return group(model, images, **forward_kwargs)[name]

    signal.__name__ = name.replace("-", "_")
    signal.__doc__ = f"The {name!r} column of {group.__name__} (see its module)."
    return signal


for _name, _group in SIGNAL_GROUPS.items():
    SIGNALS.register(_name)(_column_of(_name, _group))

"""Gradient proxies with a self-supervised loss in place of cross-entropy (label-free).

ZiCo (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
Gradients", ICLR 2023), SNIP (Lee et al., ICLR 2019; as a NAS proxy Abdelfattah et al.,
ICLR 2021) and grad-norm need the gradient of a training loss. Here that loss is SimCLR's
NT-Xent (Chen et al., 2020) between the network's features (B,D) of two augmented views
of the same unlabeled images (zero-pad 4, random crop, horizontal flip, drawn with a
seeded generator), so the proxies need no labels.

With g_k the weight gradient on split k of the batch (K >= 2 splits):
* zico-ssl     = sum_layers log( sum_theta mean_k|g_k| / std_k(g_k) )   (theta with std > 0)
* snip-ssl     = log10 sum_theta |theta * mean_k g_k|
* gradnorm-ssl = log10 sum_layers || mean_k g_k ||_2
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ssnas.data.views import PadCrop
from ssnas.objectives.simclr import nt_xent_loss
from ssnas.rating.registry import SIGNALS, CannotRate, features

SSL_GRADIENT_COLUMNS = ("zico-ssl", "snip-ssl", "gradnorm-ssl")


def two_views(images: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two pad-crop-flip views (B,3,H,W) of normalised float images, from a seeded generator."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    crop = PadCrop(images.shape[-1], 4)
    return crop(images, generator), crop(images, generator)


@SIGNALS.family("ssl-gradients", SSL_GRADIENT_COLUMNS, "ZiCo, SNIP, grad-norm on SimCLR's NT-Xent gradients (label-free)")
def ssl_gradient_proxies(
    model: nn.Module,
    images: torch.Tensor,
    seed: int = 0,
    splits: int = 2,
    temperature: float = 0.5,
    **forward_kwargs: Any,
) -> dict[str, float]:
    """ZiCo, SNIP and grad-norm of `model` under the NT-Xent loss on images (B,3,H,W).

    The batch is cut into `splits` parts (each >= 2 images); parameter gradients are
    cleared before and after.
    """
    if splits < 2 or images.shape[0] < 2 * splits:
        raise ValueError(f"need >= 2 splits of >= 2 images, got {images.shape[0]} images, {splits} splits")
    first, second = two_views(images, seed)
    weights = [
        m.weight for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight is not None and m.weight.requires_grad
    ]  # fmt: skip
    if not weights:
        raise CannotRate(f"zico-ssl, snip-ssl and gradnorm-ssl read Conv2d / Linear weights; "
                         f"{type(model).__name__} has none")  # fmt: skip
    per_split: list[list[torch.Tensor]] = []
    model.zero_grad(set_to_none=True)
    try:
        with torch.enable_grad():
            for a, b in zip(first.chunk(splits), second.chunk(splits)):
                output = features(model, torch.cat([a, b]), **forward_kwargs)  # (2b, D)
                z1, z2 = output.float().chunk(2)
                loss = nt_xent_loss(z1, z2, temperature)
                grads = torch.autograd.grad(loss, weights, allow_unused=True)
                per_split.append([
                    torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, grads)
                ])  # fmt: skip
    finally:
        model.zero_grad(set_to_none=True)
    zico = 0.0
    snip = 0.0
    norm = 0.0
    for i, weight in enumerate(weights):
        stacked = torch.stack([split[i] for split in per_split]).double()  # (K, *weight.shape)
        if not stacked.any():
            continue  # the layer is not on the path (supernets) or gets no gradient
        mean = stacked.mean(dim=0)
        std = stacked.std(dim=0, correction=0)
        mean_abs = stacked.abs().mean(dim=0)
        active = std > 0
        ratio = float((mean_abs[active] / std[active]).sum())
        if ratio > 0:
            zico += math.log(ratio)
        snip += float((weight.detach().double() * mean).abs().sum())
        norm += float(mean.norm())
    return {
        "zico-ssl": zico,
        "snip-ssl": math.log10(snip + 1e-30),
        "gradnorm-ssl": math.log10(norm + 1e-30),
    }

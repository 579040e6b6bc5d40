"""AZ-NAS's training-free proxies from one forward and one backward pass.

Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search",
CVPR 2024. With f_l (B,C_l,H_l,W_l) the output of layer l (stem, cells, reduction
blocks) on a batch of real images at initialisation:

* expressivity  s_E = sum_l H(l), H(l) the entropy of the normalised eigenvalues of the
  (C_l,C_l) covariance of the B*H_l*W_l feature vectors (isotropy of the feature space; a
  transformer block's tokens (B,T,D) give B*T vectors of size D, as the paper's AutoFormer runs);
* progressivity s_P = min_l H(l) - H(l-1) (every layer should widen the space);
* trainability  s_T = mean_l -(sigma_l + 1/sigma_l - 2), sigma_l the largest singular
  value of the layer Jacobian estimated by back-propagating Rademacher noise from f_l to
  f_(l-1); a layer whose Jacobian is exactly the identity (a cell that only passes its input
  on) contributes `IDENTITY_TERM`, a finite floor far below any real layer's term, so such
  networks rate last on trainability with a finite value;
* complexity    s_C = FLOPs, added by the ranker (it needs the space, not the network).

No labels are involved: the backward pass starts from random output gradients.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.rating.registry import SIGNALS, CannotRate, features

AZ_COLUMNS = ("az-expressivity", "az-progressivity", "az-trainability")
IDENTITY_TERM = -1e3  # real layers score about -10 to 0


def feature_layers(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are the network's layer features, input to output.

    Networks that know their macro structure expose `feature_layers()` (stem, cells and
    reduction blocks); timm models declare theirs in `feature_info` (the stages or blocks that
    `features_only=True` returns: a ResNet's stages, a ViT's blocks); for any other network
    every Conv2d stands for a layer.
    """
    method = getattr(model, "feature_layers", None)
    if callable(method):
        return list(method())
    declared = getattr(model, "feature_info", None)
    if isinstance(declared, list) and all(isinstance(d, dict) and "module" in d for d in declared):
        modules = dict(model.named_modules())
        named = [modules[d["module"]] for d in declared if d["module"] in modules]
        if len(named) >= 2:
            return named
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _rows(features: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) feature maps or (B,T,D) tokens as (B*H*W, C) or (B*T, D) vectors."""
    if features.dim() == 3:
        return features.reshape(-1, features.shape[2])  # (B*T, D)
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])  # (B*H*W, C)


def _entropy_of_spectrum(features: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance of (B,C,H,W) or (B,T,D) features."""
    vectors = _rows(features.detach().float())  # (B*H*W, C)
    vectors = vectors - vectors.mean(dim=0, keepdim=True)
    covariance = vectors.T @ vectors / vectors.shape[0]  # (C, C)
    eigenvalues = torch.linalg.eigvalsh(covariance.double()).clamp_min(0)
    total = eigenvalues.sum()
    if not torch.isfinite(total) or total <= 0:
        return 0.0
    p = eigenvalues / total
    return float(-(p * torch.log(p + 1e-8)).sum())


def _jacobian_sigma(f_in: torch.Tensor, f_out: torch.Tensor, generator: torch.Generator) -> float | None:
    """Largest singular value of the (C_in',C_out) cross-covariance of the input gradient with the
    Rademacher output gradient; None when the layer passes the gradient through unchanged."""
    noise = torch.randint(0, 2, f_out.shape, generator=generator).to(f_out.device, f_out.dtype) * 2 - 1
    (grad_in,) = torch.autograd.grad(f_out, f_in, grad_outputs=noise, retain_graph=True, allow_unused=True)
    if grad_in is None or grad_in.dim() != noise.dim():  # not consecutive (generic Conv2d layers, multi-branch)
        return math.nan
    if grad_in.shape == noise.shape and torch.equal(grad_in, noise):
        return None
    if noise.dim() == 3 and grad_in.shape[1] != noise.shape[1]:
        return math.nan  # token counts differ (a pooling transformer): not compared
    if noise.dim() == 4 and grad_in.shape[2:] != noise.shape[2:]:  # a reduction layer: fold space into channels
        factor = grad_in.shape[2] // noise.shape[2]
        if factor < 1 or grad_in.shape[2:] != (noise.shape[2] * factor, noise.shape[3] * factor):
            return math.nan  # sides that do not fold (odd sides, upsampling): not compared
        grad_in = F.pixel_unshuffle(grad_in, factor)
    g_out = _rows(noise).float()  # (BHW, C_out)
    g_in = _rows(grad_in).float()  # (BHW, C_in')
    cross = g_in.T @ g_out / g_out.shape[0]  # (C_in', C_out)
    return float(torch.linalg.matrix_norm(cross.double(), ord=2))


@SIGNALS.family("az-nas-proxies", AZ_COLUMNS, "AZ-NAS expressivity, progressivity, trainability (one forward + backward)")
def az_nas_proxies(
    model: nn.Module, images: torch.Tensor, seed: int = 0, **forward_kwargs: Any
) -> dict[str, float]:
    """Expressivity, progressivity and trainability of `model` on images (B,3,H,W).

    BN runs on batch statistics (the caller decides train/eval); parameter gradients are
    not touched (only input-output Jacobian products are taken).
    """
    layers = feature_layers(model)
    outputs: list[torch.Tensor] = []

    def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.dim() in (3, 4):
            outputs.append(output)

    handles = [layer.register_forward_hook(record) for layer in layers]
    try:
        with torch.enable_grad():
            features(model, images.requires_grad_(False), **forward_kwargs)
            entropies = [_entropy_of_spectrum(f) for f in outputs]
            generator = torch.Generator().manual_seed(seed)
            sigmas = [
                _jacobian_sigma(outputs[i - 1], outputs[i], generator)
                for i in reversed(range(1, len(outputs)))
                if outputs[i].requires_grad and outputs[i - 1].requires_grad
            ]
    finally:
        for handle in handles:
            handle.remove()
    if len(entropies) < 2:
        raise CannotRate(f"AZ-NAS (az-*) reads at least 2 layer features (Conv2d maps, a timm model's feature_info, "
                          f"or feature_layers()); {type(model).__name__} gives {len(entropies)}")  # fmt: skip
    steps = [b - a for a, b in zip(entropies, entropies[1:])]
    terms = [IDENTITY_TERM if s is None else -(s + 1 / (s + 1e-6) - 2) for s in sigmas if s is None or not math.isnan(s)]
    trainability = sum(terms) / len(terms) if terms else IDENTITY_TERM
    return {
        "az-expressivity": float(sum(entropies)),
        "az-progressivity": float(min(steps)),
        "az-trainability": float(trainability),
    }

"""The registry of label-free signals: each name belongs to one family (one pass over a network).

A family is a function `(model, images, seed, **forward_kwargs) -> {column: value}` that
computes all of its columns from one forward (and backward) pass, so the engine asks each
family once per network whatever subset of its columns a ranker needs. `forward_kwargs`
select a supernet path (`arch=...`, `path=...`); on a standalone network they are empty.
Every value is a Python float, higher = better.

Families run on any `nn.Module` (ssnas networks, timm models, a user's own) through forward
hooks on its layers; a family that finds none of the layers it reads raises `CannotRate`
(one line naming the family and what it needs), never a silent NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssnas.errors import UserError

FamilyPass = Callable[..., dict[str, float]]


@dataclass(frozen=True)
class SignalFamily:
    """Signals computed together. `columns`: the signal names it returns; `data_free`: only the
    input's shape is used (SynFlow); `summary`: one line for `ssnas rank --help` and the docs."""

    name: str
    compute: FamilyPass
    columns: tuple[str, ...]
    summary: str
    data_free: bool = False


class SignalRegistry:
    """signal name -> its family; families in registration order."""

    def __init__(self) -> None:
        self._families: dict[str, SignalFamily] = {}
        self._by_signal: dict[str, SignalFamily] = {}

    def family(self, name: str, columns: tuple[str, ...], summary: str, data_free: bool = False) -> Callable[[FamilyPass], FamilyPass]:
        """Decorator registering a family pass under `name` with the signal names it returns."""

        def register(compute: FamilyPass) -> FamilyPass:
            family = SignalFamily(name, compute, columns, summary, data_free)
            clash = [c for c in columns if c in self._by_signal]
            if name in self._families or clash:
                raise ValueError(f"signal family {name!r} or signal(s) {clash} registered twice")
            self._families[name] = family
            self._by_signal.update({column: family for column in columns})
            return compute

        return register

    def of(self, signal: str) -> SignalFamily:
        return self._by_signal[signal]

    def names(self) -> list[str]:
        return sorted(self._by_signal)

    def families(self) -> list[SignalFamily]:
        return list(self._families.values())

    def __contains__(self, signal: object) -> bool:
        return signal in self._by_signal


SIGNALS = SignalRegistry()

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Mish, nn.LeakyReLU, nn.ELU,
)  # fmt: skip
# timm's own ReLU-like activation classes (timm.layers.activations*), matched without importing timm
_TIMM_ACTIVATIONS = {"GELU", "GELUTanh", "QuickGELU", "Swish", "SwishMe", "Mish", "MishMe", "HardSwish", "HardSwishMe"}


class CannotRate(UserError):
    """A signal family cannot rate this network: it has none of the layers the family reads (an MLP
    has no Conv2d), or the family's pass cannot run on it (one image through train-mode BN at 1x1)."""


def activation_kinds(model: nn.Module) -> tuple[type[nn.Module], ...]:
    """The ReLU-like module classes in `model`: `ACTIVATIONS` plus timm's own activation classes."""
    timm_kinds = {
        type(m) for m in model.modules()
        if type(m).__module__.startswith("timm.layers.activations") and type(m).__name__ in _TIMM_ACTIVATIONS
    }  # fmt: skip
    return ACTIVATIONS + tuple(sorted(timm_kinds, key=lambda kind: kind.__name__))


@contextmanager
def forward_hooks(model: nn.Module, kinds: tuple[type[nn.Module], ...], hook: Callable[..., None]) -> Iterator[None]:
    """`hook` on every module of `kinds` for the duration (only modules that run fire)."""
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def features(model: nn.Module, images: torch.Tensor, **forward_kwargs: Any) -> torch.Tensor:
    """The network's (B, D) features on images (B,3,H,W).

    * ssnas networks: `forward_features` returns (B, D), used as it is;
    * timm models: `forward_features` returns the unpooled map (B,C,H,W) or tokens (B,T,D), and
      the features are `forward_head(x, pre_logits=True)`, timm's pre-classifier embedding: the
      model's own pooling (the class token for ViTs) and its head layers before the classifier
      (ConvNeXt's norm, MobileNetV3's 1x1 conv). A plain average pool would skip those layers and
      pool a ViT's tokens wrongly; for ResNets and EfficientNets the two are the same;
    * any other module: its output, (B,C,H,W) average-pooled over space (as a pooled backbone
      gives it), anything else flattened to (B, D). A classifier is rated on its logits: give a
      factory without the head to rate its embedding.
    """
    forward_features = getattr(model, "forward_features", None)
    if callable(forward_features):
        output = forward_features(images, **forward_kwargs)
        forward_head = getattr(model, "forward_head", None)
        if isinstance(output, torch.Tensor) and output.dim() != 2 and callable(forward_head):
            output = forward_head(output, pre_logits=True)
    else:
        output = model(images, **forward_kwargs)
    if not isinstance(output, torch.Tensor):
        raise UserError(f"{type(model).__name__} returns {type(output).__name__}, not a tensor: "
                        "give a factory whose module returns the features (B, ...)")  # fmt: skip
    if output.dim() == 4:
        return output.mean(dim=(2, 3))  # (B, C)
    return output if output.dim() == 2 else output.reshape(output.shape[0], -1)  # (B, D)

"""The registry of label-free signals: each name belongs to one family (one pass over a network).

A family is a function `(model, images, seed, **forward_kwargs) -> {column: value}` that
computes all of its columns from one forward (and backward) pass, so the engine asks each
family once per network whatever subset of its columns a ranker needs. `forward_kwargs`
select a supernet path (`arch=...`, `path=...`); on a standalone network they are empty.
Every value is a Python float, higher = better.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

FamilyPass = Callable[..., dict[str, float]]


@dataclass(frozen=True)
class SignalFamily:
    """Signals computed together. `columns`: the signal names it returns; `data_free`: only the
    input's shape is used (SynFlow); `summary`: one line for `ssnas rank --help` and the README."""

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

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU)


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
    """The network's (B, D) features: every ssnas network exposes `forward_features`."""
    forward: Callable[..., torch.Tensor] = getattr(model, "forward_features")
    return forward(images, **forward_kwargs)

"""Structural rankers: costs of the space's full-size network (no network run, no images).

Costs come from the space as `create_space(name)` builds it by default (the network
`ssnas train` trains and budgets are counted on), whatever network size the signals are
computed on, so `params` is the same value from every command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from ssnas.errors import UserError
from ssnas.registry import Registry
from ssnas.spaces import Architecture, SearchSpace, create_space

Structural = Callable[[SearchSpace, Sequence[Architecture]], list[float]]
STRUCTURAL: Registry[list[float]] = Registry("ranker")


@lru_cache(maxsize=8)
def full_size(name: str) -> SearchSpace:
    """The space `name` at its default (full) network size."""
    return create_space(name)


def _space_method(space: SearchSpace, method: str) -> Callable[[Architecture], float]:
    function = getattr(full_size(space.name), method, None)
    if not callable(function):
        raise UserError(f"space {space.name!r} cannot compute {method}")
    return function


@STRUCTURAL.register("params")
def rank_by_params(space: SearchSpace, archs: Sequence[Architecture]) -> list[float]:
    """Score = parameter count of the 10-class full-size network (more is better)."""
    count = _space_method(space, "num_parameters")
    return [float(count(arch)) for arch in archs]


@STRUCTURAL.register("flops")
def rank_by_flops(space: SearchSpace, archs: Sequence[Architecture]) -> list[float]:
    """Score = multiply-accumulates of one 32x32 forward pass of the full-size network (more is better)."""
    flops = _space_method(space, "flops")
    return [float(flops(arch)) for arch in archs]

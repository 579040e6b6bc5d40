"""Zero-cost baseline rankers computed from ssnas's own networks (not read from tables)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ssnas.errors import UserError
from ssnas.registry import Registry
from ssnas.spaces import Architecture, SearchSpace

Ranker = Callable[[SearchSpace, Sequence[Architecture]], list[float]]
RANKERS: Registry[list[float]] = Registry("ranker")


def _space_method(space: SearchSpace, method: str) -> Callable[[Architecture], float]:
    function = getattr(space, method, None)
    if not callable(function):
        raise UserError(f"space {space.name!r} cannot compute {method}")
    return function  # type: ignore[no-any-return]


@RANKERS.register("params")
def rank_by_params(space: SearchSpace, archs: Sequence[Architecture]) -> list[float]:
    """Score = parameter count of the 10-class network (more is better)."""
    count = _space_method(space, "num_parameters")
    return [float(count(arch)) for arch in archs]


@RANKERS.register("flops")
def rank_by_flops(space: SearchSpace, archs: Sequence[Architecture]) -> list[float]:
    """Score = multiply-accumulates of one 32x32 forward pass (more is better)."""
    flops = _space_method(space, "flops")
    return [float(flops(arch)) for arch in archs]

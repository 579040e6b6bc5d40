"""Search strategies, registered by name in `STRATEGIES`."""

from __future__ import annotations

from ssnas.registry import Registry
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask, Strategy, SupportsRating

STRATEGIES: Registry[Strategy] = Registry("strategy")


def create_strategy(name: str, **kwargs: object) -> Strategy:
    return STRATEGIES.create(name, **kwargs)


__all__ = [
    "STRATEGIES",
    "ScoredArch",
    "SearchResult",
    "SearchTask",
    "Strategy",
    "SupportsRating",
    "create_strategy",
]

# One explicit import per strategy module (registration happens on import).
from ssnas.strategies import tpe as _tpe  # noqa: E402,F401
from ssnas.strategies import setn as _setn  # noqa: E402,F401
from ssnas.strategies import bossnas as _bossnas  # noqa: E402,F401
from ssnas.strategies import evolution as _evolution  # noqa: E402,F401
from ssnas.strategies import two_stage as _two_stage  # noqa: E402,F401

"""Moved: compute budgets are `ssnas.spaces.budget` (a property of architectures, below the
strategies), `keep_within` is `ssnas.strategies.base.keep_within`.

Kept only so `ssnas.run`, `strategies/setn.py` and `strategies/evolution.py` import until their
owners switch; then delete this module.
"""

from __future__ import annotations

from ssnas.spaces import budget as _moved
from ssnas.spaces.budget import Budget, Constraint, CostModel, LatencyConfig, cpu_model, descend, measure_latency
from ssnas.spaces.budget import mutate, within
from ssnas.strategies.base import keep_within

__all__ = [*_moved.__all__, "keep_within"]

"""Label-free raters for search strategies: architectures -> per-signal columns -> one score.

A rater returns raw per-signal columns (higher = better) for a batch of architectures;
combining them into one score is a separate step (`Rater.combine`) over whatever set
the strategy holds, e.g. every architecture rated so far. Rank-based combinations
(mean rank, AZ-NAS's log rank) are only comparable within one set, so strategies that
need a value per architecture on its own (an Optuna trial) use `ReferenceScale`.

Two raters:

* `SignalRater`: `ssnas.strategies.rating` signals at initialisation (`init-meco`,
  `init-naswot`, ...) or `params`, combined by mean normalised rank;
* `RankerRater`: a training-free ranker of `ssnas.ranking.zero_cost` by name
  (e.g. "az-nas"), with that ranker's own aggregation.

Both are deterministic: a network is initialised from the task's seed and every
architecture sees the same held-out images, so a value never depends on which batch
an architecture was rated in (what lets a killed search resume from saved values).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from ssnas.errors import UserError
from ssnas.spaces import Architecture, SearchSpace
from ssnas.strategies.base import SearchTask
from ssnas.strategies.rating import RatingConfig, combine_by_rank, rate_architectures

Columns = dict[str, list[float]]
DEFAULT_RATING = ("init-meco", "init-synflow")  # until the training-free rankers land


class Rater(Protocol):
    """Per-signal values of architectures and their combination (higher = better)."""

    name: str

    def columns(self, archs: Sequence[Architecture]) -> Columns: ...

    def combine(self, columns: Columns) -> list[float]: ...


class SignalRater:
    """`rating.py` signals on the standalone network at initialisation (fp32, one held-out batch);
    silent, the strategy using it reports progress.

    Args:
        task: gives the space, held-out images (M,3,H,W) uint8, device and seed.
        signals: `init-*` signal names or `params`; several combine by mean normalised rank.
        batch_size: held-out images each network sees.
    """

    def __init__(self, task: SearchTask, signals: Sequence[str] = ("init-meco", "init-naswot"), batch_size: int = 64) -> None:
        self.config = RatingConfig(signals=tuple(signals), batches=1, batch_size=batch_size)
        needs_supernet = [s for s in self.config.signals if not (s.startswith("init-") or s == "params")]
        if needs_supernet:
            raise UserError(f"signal(s) {', '.join(needs_supernet)} need a trained supernet; "
                            f"at initialisation use init-* signals or params")  # fmt: skip
        self.task = task
        self.train = replace(task.train, precision="fp32")
        self.name = "+".join(self.config.signals)

    def columns(self, archs: Sequence[Architecture]) -> Columns:
        scored = rate_architectures(self.task.space, None, None, archs, self.task.holdout_images, self.config,
                                    self.train, seed=self.task.seed, report=False)  # fmt: skip
        return {name: [s.details[name] for s in scored] for name in self.config.signals}

    def combine(self, columns: Columns) -> list[float]:
        return combine_by_rank(columns)


class RankerRater:
    """A training-free ranker of `ssnas.ranking.zero_cost` by name ("az-nas", "meco+naswot", ...),
    combined by that ranker's own aggregation."""

    def __init__(self, task: SearchTask, ranker: str, batch_size: int = 64) -> None:
        from ssnas.ranking import zero_cost  # imports the strategies package: load it lazily

        self._zero_cost = zero_cost
        self.ranker = zero_cost.parse_ranker(ranker)
        self.config = zero_cost.ZeroCostConfig(batch_size=batch_size, seed=task.seed)
        self.task, self.name = task, ranker

    def columns(self, archs: Sequence[Architecture]) -> Columns:
        scores = self._zero_cost.score_architectures(self.task.space, list(archs), self.ranker,
                                                     self.task.holdout_images, self.config)  # fmt: skip
        return {name: [float(v) for v in values] for name, values in scores.columns.items()}

    def combine(self, columns: Columns) -> list[float]:
        return [float(v) for v in self.ranker.combine(columns)]


def create_rater(task: SearchTask, rating: str | Sequence[str], batch_size: int = 64) -> Rater:
    """A `SignalRater` for `init-*` signal names, else a `RankerRater` (names joined by '+')."""
    names = [rating] if isinstance(rating, str) else list(rating)
    if all(n.startswith("init-") for n in names):
        return SignalRater(task, names, batch_size)
    return RankerRater(task, "+".join(names), batch_size)


class ReferenceScale:
    """Absolute scores: each signal standardised against a fixed reference sample, then averaged.

    score(a) = mean_s (x_s(a) - median_s) / IQR_s over the reference architectures; monotone in
    every signal and independent of the other architectures scored (for Optuna trials). A rater
    with a single signal keeps its raw value.
    """

    def __init__(self, rater: Rater, reference: Sequence[Architecture]) -> None:
        self.rater = rater
        self.centre: dict[str, float] = {}
        self.scale: dict[str, float] = {}
        if reference:
            for name, values in rater.columns(reference).items():
                finite = [v for v in values if np.isfinite(v)]
                q1, median, q3 = np.percentile(finite, [25, 50, 75]) if finite else (0.0, 0.0, 1.0)
                self.centre[name] = float(median)
                self.scale[name] = float(q3 - q1) or float(statistics.pstdev(finite) if finite else 1.0) or 1.0

    def score(self, arch: Architecture) -> tuple[float, dict[str, float]]:
        columns = self.rater.columns([arch])
        values = {name: column[0] for name, column in columns.items()}
        if len(values) == 1:
            return next(iter(values.values())), values
        parts = [(v - self.centre[n]) / self.scale[n] if np.isfinite(v) else -1e9 for n, v in values.items()]
        return float(np.mean(parts)), values


def reference_sample(space: SearchSpace, count: int, seed: int) -> list[Architecture]:
    """`count` distinct seeded random architectures, cells whose input reaches the output only."""
    rng = random.Random(f"reference:{seed}")
    degenerate = getattr(space, "is_degenerate", lambda arch: False)
    found: dict[Architecture, None] = {}
    for _ in range(100 * count):
        arch = space.sample(rng)
        if not degenerate(arch):
            found.setdefault(arch, None)
        if len(found) == count:
            break
    return list(found)


__all__ = [
    "DEFAULT_RATING", "Columns", "RankerRater", "Rater", "ReferenceScale", "SignalRater", "create_rater",
    "reference_sample",
]

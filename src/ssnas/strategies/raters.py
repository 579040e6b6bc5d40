"""Label-free raters for search strategies: architectures -> per-signal columns -> one score.

A `Rater` returns the raw columns (higher = better) of a ranker's leaves for a batch of
architectures, from the one rating engine (`ssnas.rating`), at the task's network size, on the
task's held-out images and seed; combining them into one score is a separate step
(`Rater.combine`) over whatever set the strategy holds, e.g. every architecture rated so far.
Rank-based combinations (mean rank, AZ-NAS's log rank) are only comparable within one set, so
strategies that need a value per architecture on its own (an Optuna trial) use `ReferenceScale`.

Deterministic: a network is initialised from the task's seed and every architecture sees the
same held-out images, so a value never depends on which batch an architecture was rated in
(what lets a killed search resume from saved values).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ssnas.rating import EngineConfig, Ranker, parse_ranker, score_architectures
from ssnas.rating.defaults import search_defaults
from ssnas.spaces import Architecture, SearchSpace, is_degenerate
from ssnas.strategies.base import SearchTask
from ssnas.training.precision import resolve_device

Columns = dict[str, list[float]]


class Rater(Protocol):
    """Per-signal values of architectures and their combination (higher = better)."""

    name: str

    def columns(self, archs: Sequence[Architecture]) -> Columns: ...

    def combine(self, columns: Columns) -> list[float]: ...


class EngineRater:
    """A ranker (`ssnas.rating.parse_ranker` text, e.g. "az-nas-ssl" or "meco+synflow") on the
    task's space, held-out images (M,3,H,W) uint8, device and seed.

    Args:
        task: the search task (its space is the network size rated).
        ranker: ranker expression; `init-` spellings are accepted (`init-meco+init-synflow`).
        batch_size: held-out images each network sees.
    """

    def __init__(self, task: SearchTask, ranker: str | Sequence[str], batch_size: int = 64) -> None:
        text = ranker if isinstance(ranker, str) else "+".join(ranker)
        self.ranker: Ranker = parse_ranker(text)
        self.task, self.name = task, text
        self.config = EngineConfig(batch_size=min(batch_size, len(task.holdout_images)), seed=task.seed,
                                   device=str(resolve_device(task.train.device)))  # fmt: skip
        self.nonfinite: dict[str, int] = {}

    def columns(self, archs: Sequence[Architecture]) -> Columns:
        scores = score_architectures(self.task.space, list(archs), self.ranker, self.task.holdout_images, self.config)
        for name, count in scores.nonfinite.items():
            self.nonfinite[name] = self.nonfinite.get(name, 0) + count
        return {name: [float(v) for v in values] for name, values in scores.columns.items()}

    def combine(self, columns: Columns) -> list[float]:
        return [float(v) for v in self.ranker.combine(columns)]


def create_rater(task: SearchTask, rating: str | Sequence[str], batch_size: int = 64) -> EngineRater:
    """An `EngineRater` for a ranker expression (or its names as a sequence, joined by '+')."""
    return EngineRater(task, rating, batch_size)


class ReferenceScale:
    """Absolute scores: each signal standardised against a fixed reference sample, then averaged.

    score(a) = mean_s (x_s(a) - median_s) / IQR_s over the reference architectures; monotone in
    every signal and independent of the other architectures scored (for Optuna trials). A rater
    with a single signal keeps its raw value. Non-finite values are rated last: they take the
    reference's lowest value minus one scale (without a reference they stay as they are, and the
    trial fails as diverged).
    """

    def __init__(self, rater: Rater, reference: Sequence[Architecture]) -> None:
        self.rater = rater
        self.centre: dict[str, float] = {}
        self.scale: dict[str, float] = {}
        self.floor: dict[str, float] = {}
        if reference:
            for name, values in rater.columns(reference).items():
                finite = [v for v in values if np.isfinite(v)]
                q1, median, q3 = np.percentile(finite, [25, 50, 75]) if finite else (0.0, 0.0, 1.0)
                self.centre[name] = float(median)
                self.scale[name] = float(q3 - q1) or float(statistics.pstdev(finite) if finite else 1.0) or 1.0
                self.floor[name] = (min(finite) if finite else 0.0) - self.scale[name]

    def score(self, arch: Architecture) -> tuple[float, dict[str, float]]:
        columns = self.rater.columns([arch])
        values = {name: column[0] for name, column in columns.items()}
        parts = {n: v if np.isfinite(v) else self.floor.get(n, v) for n, v in values.items()}  # rated last
        if len(parts) == 1:
            return float(next(iter(parts.values()))), values
        return float(np.mean([(p - self.centre[n]) / self.scale[n] for n, p in parts.items()])), values


def reference_sample(space: SearchSpace, count: int, seed: int) -> list[Architecture]:
    """`count` distinct seeded random architectures, cells whose input reaches the output only."""
    rng = random.Random(f"reference:{seed}")
    found: dict[Architecture, None] = {}
    for _ in range(100 * count):
        arch = space.sample(rng)
        if not is_degenerate(space, arch):
            found.setdefault(arch, None)
        if len(found) == count:
            break
    return list(found)


def rating_for(space: str, ranker: str | None, batch_size: int | None) -> tuple[str, int]:
    """`ranker` and `batch_size`, each the space's search default where None (`ssnas.rating.defaults`): the one
    place the strategies that rate at initialisation (evolution, two-stage, tpe / random rating trials) fill them."""
    defaults = search_defaults(space)
    return ranker or defaults.ranker, batch_size or defaults.batch_size


__all__ = ["Columns", "EngineRater", "Rater", "ReferenceScale", "create_rater", "rating_for", "reference_sample"]

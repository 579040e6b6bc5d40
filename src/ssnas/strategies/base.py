"""The strategy protocol: a strategy decides, networks and objectives just compute.

Two evaluation styles share it: a trained-from-scratch proxy
per trial (CSNAS/TPE, random) and a weight-sharing supernet with candidate
rating (SETN, BossNAS). Ground truth never enters a strategy; reports add it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ssnas.errors import UserError
from ssnas.spaces import Architecture, SearchSpace
from ssnas.spaces.budget import Constraint
from ssnas.training.loop import TrainConfig


@dataclass
class SearchTask:
    """Everything a strategy needs; built by `ssnas.run` from a config.

    images:          (N,3,H,W) uint8, the unlabeled training images.
    holdout_images:  (M,3,H,W) uint8, unlabeled images kept out of training, for rating.
    labels / holdout_labels: (N,) / (M,) int64, only for the supervised reference objective.
    budget:          compute budget; strategies never keep (or propose) an architecture it refuses.
    started:         `time.monotonic()` when the run started (time budgets count from it); None = now.
    """

    space: SearchSpace
    images: torch.Tensor
    holdout_images: torch.Tensor
    objective: str = "simclr"
    views: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    out_dir: Path | None = None
    resume: bool = False
    labels: torch.Tensor | None = None
    holdout_labels: torch.Tensor | None = None
    budget: Constraint | None = None
    started: float | None = None


@dataclass(frozen=True)
class ScoredArch:
    """An architecture and its label-free score (higher is better)."""

    arch: Architecture
    score: float
    details: dict[str, float] = field(default_factory=dict)


@dataclass
class SearchResult:
    best: ScoredArch
    candidates: list[ScoredArch]
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    def search(self, task: SearchTask) -> SearchResult: ...


@runtime_checkable
class SupportsRating(Protocol):
    """A strategy that can also rate a given list of architectures (for `ssnas rank`)."""

    def rate(self, task: SearchTask, archs: Sequence[Architecture]) -> list[ScoredArch]: ...


def keep_within(result: SearchResult, constraint: Constraint | None) -> SearchResult:
    """The result with over-budget candidates dropped and the best admitted one as `best`
    (every strategy's last line of defence); UserError when none is left."""
    if constraint is None:
        return result
    kept = [c for c in result.candidates if constraint.admits(c.arch)]
    if not kept:
        raise UserError(f"the search kept no architecture within the budget ({len(result.candidates)} candidates "
                        "were over it); relax the budget or search longer")  # fmt: skip
    best = result.best if constraint.admits(result.best.arch) else max(kept, key=lambda c: c.score)
    dropped = len(result.candidates) - len(kept)
    return replace(result, best=best, candidates=kept, info={**result.info, "over_budget_dropped": dropped})

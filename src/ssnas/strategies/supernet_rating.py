"""SETN's rating of candidates: on the trained template's shared weights or at initialisation.

Every candidate sees the same held-out images (`ssnas.rating.engine.rating_batches`) and the
same augmented views, so scores differ only through the architecture. Signal names:

* `ssl-loss`: minus the objective's loss on held-out views (SETN's one-batch rating, label-free);
* `accuracy`: held-out top-1 (supervised reference only);
* a signal of `ssnas.rating.SIGNALS` (`meco`, `naswot`, ...): on the supernet path, averaged over
  the rating batches, through the same engine function as everywhere else;
* `init-<signal>` and `params`: the candidate's standalone network at initialisation, by the
  rating engine itself, so the value equals `ssnas rank --ranker <signal>`'s at the same network
  size, images and seed.

BN runs on batch statistics with running statistics put back, so rating never changes the
supernet. Several signals combine by their mean normalised rank over the candidates, non-finite
values rated last (`ssnas.rating.aggregate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.faults import fault_point
from ssnas.objectives import Batch, Objective
from ssnas.objectives.base import forward_features_of
from ssnas.rating import SIGNALS, EngineConfig, frozen_batch_norm, network_signals, rating_batches, score_architectures
from ssnas.rating.aggregate import INIT_PREFIX, combine
from ssnas.rating.engine import rating_indices
from ssnas.spaces import Architecture, SearchSpace
from ssnas.strategies.base import ScoredArch
from ssnas.training.loop import TrainConfig
from ssnas.training.precision import resolve_device, resolve_precision
from ssnas.training.progress import track

# SETN's rating of candidates (mean rank): NASWOT on the trained template's path, MeCo and AZ-NAS's
# progressivity of the candidate's own network at initialisation. The best Spearman on 200
# development cells (quick preset, benchmarks/bench_setn.py) among the mean-rank combinations of up
# to three signals that hold at least one template signal; docs/methods/setn.md.
DEFAULT_SIGNALS = ("naswot", "init-meco", "init-az-progressivity")
HELD_OUT_SIGNALS = ("ssl-loss", "accuracy")
SUPERNET_SIGNALS = (*HELD_OUT_SIGNALS, *SIGNALS.names())
INIT_SIGNALS = tuple(f"{INIT_PREFIX}{name}" for name in SIGNALS.names())
STRUCTURE_SIGNALS = ("params",)
ALL_SIGNALS = (*SUPERNET_SIGNALS, *INIT_SIGNALS, *STRUCTURE_SIGNALS)


@dataclass(frozen=True)
class RatingConfig:
    """How SETN rates candidates.

    signals: names from `ALL_SIGNALS` (module docstring).
    batches, batch_size: held-out images used, identical for every candidate; signals at
        initialisation use the first batch.
    """

    signals: tuple[str, ...] = DEFAULT_SIGNALS
    batches: int = 2
    batch_size: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals", tuple(self.signals))
        unknown = [s for s in self.signals if s not in ALL_SIGNALS]
        if unknown or not self.signals:
            raise UserError(f"unknown rating signal(s) {unknown}; choose from: {', '.join(ALL_SIGNALS)}")


def combine_by_rank(columns: dict[str, list[float]]) -> list[float]:
    """Mean over signals of each candidate's rank in (0, 1]; one signal = its raw value (finite)."""
    return combine(list(columns.values()), "mean-rank")


def rate_architectures(
    space: SearchSpace,
    supernet: nn.Module | None,
    objective: Objective | None,
    archs: Sequence[Architecture],
    holdout: torch.Tensor,
    config: RatingConfig,
    train_config: TrainConfig,
    seed: int = 0,
    holdout_labels: torch.Tensor | None = None,
    report: bool = True,
) -> list[ScoredArch]:
    """Score every architecture with `config.signals` (details keep each signal's value)."""
    if not archs:
        return []
    device = resolve_device(train_config.device)
    size = min(config.batch_size, holdout.shape[0])
    columns: dict[str, list[float]] = {}
    at_init = [name for name in config.signals if name.startswith(INIT_PREFIX) or name in STRUCTURE_SIGNALS]
    if at_init:
        engine = EngineConfig(batch_size=size, seed=seed, device=str(device))
        scores = score_architectures(space, archs, "+".join(at_init), holdout, engine)
        columns.update({name: scores.columns[name.removeprefix(INIT_PREFIX)] for name in at_init})
    on_supernet = [name for name in config.signals if name not in at_init]
    if on_supernet:
        if supernet is None:
            raise UserError(f"rating signal(s) {', '.join(on_supernet)} need a trained supernet")
        rater = _SupernetRater(supernet, objective, holdout, holdout_labels, config, size, seed, device,
                               resolve_precision(train_config.precision, device))  # fmt: skip
        pairs = [(name, arch) for name in on_supernet for arch in archs]
        for name in on_supernet:
            columns[name] = []
        for name, arch in track(pairs, "rating", len(pairs), "signal values") if report else pairs:
            fault_point("rate")  # tests only
            columns[name].append(rater.value(name, arch))
    columns = {name: columns[name] for name in config.signals}
    combined = combine_by_rank(columns)
    return [ScoredArch(arch, combined[i], {name: columns[name][i] for name in columns}) for i, arch in enumerate(archs)]


class _SupernetRater:
    """Signals of supernet paths on the rating batches (held-out loss / accuracy or `SIGNALS`)."""

    def __init__(
        self, supernet: nn.Module, objective: Objective | None, holdout: torch.Tensor, labels: torch.Tensor | None,
        config: RatingConfig, size: int, seed: int, device: torch.device, precision: Any,
    ) -> None:
        self.supernet, self.objective, self.holdout, self.labels = supernet, objective, holdout, labels
        self.seed, self.device, self.precision = seed, device, precision
        self.indices = rating_indices(holdout.shape[0], size, seed, config.batches)
        self.images = rating_batches(holdout, size, seed, config.batches, device)
        self._family_values: dict[tuple[str, Architecture], dict[str, float]] = {}  # one pass per family and path

    def value(self, name: str, arch: Architecture) -> float:
        if name in HELD_OUT_SIGNALS:
            with frozen_batch_norm(self.supernet):
                return self._held_out(name, arch)
        family = SIGNALS.of(name)
        key = (family.name, arch)
        if key not in self._family_values:
            passes = [network_signals(self.supernet, family.columns, x, self.seed, arch=arch) for x in self.images]
            self._family_values[key] = {
                column: float(sum(values[column][0] for values in passes) / len(passes)) for column in family.columns
            }
        return self._family_values[key][name]

    @torch.no_grad()
    def _held_out(self, name: str, arch: Architecture) -> float:
        if self.objective is None:
            raise UserError(f"rating signal {name!r} needs the training objective")
        views = VIEWS.create(self.objective.view_recipe)
        total = 0.0
        for b, idx in enumerate(self.indices):
            generator = torch.Generator(device=self.device).manual_seed(self.seed * 1000 + b)  # same views for every arch
            labels = self.labels[idx].to(self.device) if self.labels is not None else None
            batch = Batch(views(self.holdout[idx].to(self.device), generator), idx.to(self.device), labels)
            with self.precision.autocast():
                if name == "accuracy":
                    if labels is None:
                        raise UserError("rating signal 'accuracy' needs labels (supervised reference only)")
                    classifier = cast(nn.Module, self.objective.classifier)  # the supervised reference's head
                    logits = classifier(forward_features_of(self.supernet, batch.views[0], arch=arch))
                    total += float((logits.argmax(dim=1) == labels).float().mean())
                else:
                    total -= float(self.objective(self.supernet, batch, arch=arch))
        return total / len(self.indices)

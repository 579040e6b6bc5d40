"""The per-trial proxy of CSNAS: train a fresh network from scratch, report its SSL loss.

Nguyen & Chang, "CSNAS: Contrastive Self-supervised Learning Neural Architecture
Search via Sequential Model-Based Optimization" (arXiv 2102.10557; its code, namnguyen0510/CSNAS search/search.py):
every trial builds the candidate, trains it from scratch with the self-supervised
objective on a small unlabeled subset for E epochs (no weight sharing between trials)
and hands a loss to the optimiser (lower is better). Two losses are offered:

* ``loss="holdout"`` (default): the objective's loss on held-out unlabeled images
  (`task.holdout_images`), computed without gradients after training, BN on batch
  statistics (the network is discarded afterwards, and running statistics after a
  few proxy steps are poor estimates). Undefined for objectives that keep one state
  row per training image (CSNAS's memory bank); those raise a UserError.
* ``loss="train"``: the final epoch's mean training loss, as the CSNAS code reports
  (there Σ(batch loss x batch size) / #batches, a constant multiple of this mean).

Every trial uses the same training seed, subset and view generator seed, so two
trials differ only by their architecture.

>>> evaluate = ProxyEvaluator(task, ProxyConfig(num_images=500))   # doctest: +SKIP
>>> outcome = evaluate(task.space.sample(random.Random(0)))         # doctest: +SKIP
>>> outcome.loss, outcome.details["images_per_second"]              # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.errors import TrainingDiverged, UserError
from ssnas.objectives import create_objective
from ssnas.objectives.base import Batch, Objective, feature_dim_of, has_per_image_state
from ssnas.spaces import Architecture
from ssnas.strategies.base import SearchTask
from ssnas.strategies.raters import ReferenceScale, create_rater, rating_for, reference_sample
from ssnas.training.loop import TrainConfig, ViewMaker, train
from ssnas.training.precision import resolve_precision_name
from ssnas.training.seeding import seeded

LOSSES = ("holdout", "train")
# A trial's loss is its score; bf16 was not measured to keep it, so `auto` trains trials in fp32
# (`ssnas.training.precision`).
BF16_KEEPS_QUALITY = False
TRIAL_OBJECTIVES = ("ssl-proxy", "rating")


@dataclass(frozen=True)
class ProxyConfig:
    """How one trial is scored (plain values, so it round-trips through TOML).

    loss:        "holdout" (SSL loss on held-out images) or "train" (final-epoch training loss).
    num_images:  train on this many of `task.images` (a fixed random subset); None = all.
                 CSNAS searched on 1 % of CIFAR-10 train, i.e. 500 images.
    num_holdout: score on this many of `task.holdout_images`; None = all.
    eval_batch_size: batch size of the held-out pass.
    trial_objective: "ssl-proxy" (the above, CSNAS's setting) or "rating": minus a label-free
                 rating at initialisation (`ssnas.strategies.raters`), no training.
    ranker:      for "rating": a ranker expression of `ssnas.rating` (e.g. "az-nas-ssl"); None = the
                 space's search default (`ssnas.rating.defaults.search_defaults`).
    reference:   architectures of the fixed sample that puts several signals on one scale.
    """

    loss: str = "holdout"
    num_images: int | None = None
    num_holdout: int | None = None
    eval_batch_size: int = 256
    trial_objective: str = "ssl-proxy"
    ranker: str | None = None
    rating_batch_size: int | None = None  # held-out images per rated network; None = the space's search default
    reference: int = 32

    def __post_init__(self) -> None:
        if self.trial_objective not in TRIAL_OBJECTIVES:
            raise UserError(f"unknown trial objective {self.trial_objective!r}; choose from: {', '.join(TRIAL_OBJECTIVES)}")
        if self.loss not in LOSSES:
            raise UserError(f"unknown proxy loss {self.loss!r}; choose from: {', '.join(LOSSES)}")
        if self.eval_batch_size < 2:
            raise UserError(f"proxy eval_batch_size must be >= 2, got {self.eval_batch_size}")

    def saved(self) -> dict[str, Any]:
        """As a study stores it: the ranker under "rating", as studies of older versions hold it,
        so their searches resume and their workers join."""
        return {("rating" if key == "ranker" else key): value for key, value in asdict(self).items()}

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> ProxyConfig:
        return cls(**{("ranker" if key == "rating" else key): value for key, value in saved.items()})


@dataclass(frozen=True)
class TrialOutcome:
    """The value a trial hands to the optimiser (lower is better) and what it measured."""

    loss: float
    details: dict[str, float] = field(default_factory=dict)


Evaluate = Callable[[Architecture], TrialOutcome]


def subset_index(total: int, n: int | None, seed: int, what: str) -> torch.Tensor:
    """(n,) positions out of `total`, drawn without replacement by a generator seeded with `seed`
    (all `total`, in order, when n is None)."""
    if n is None:
        return torch.arange(total)
    if not 2 <= n <= total:
        raise UserError(f"proxy {what} must be between 2 and {total}, got {n}")
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


@torch.no_grad()
def holdout_loss(
    model: nn.Module,
    objective: Objective,
    images: torch.Tensor,
    views: ViewMaker,
    batch_size: int,
    seed: int,
) -> float:
    """Mean objective loss over `images` ((M,3,H,W) uint8), weighted by batch size.

    No gradients; the network's BN uses batch statistics (train mode) while the objective
    is in eval mode (no EMA or bank updates). The last partial batch is kept when it has
    at least 2 images (contrastive losses need a pair).
    """
    device = next(model.parameters()).device
    images = images.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training, objective.training
    model.train()
    objective.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]  # (b,3,H,W)
            if len(chunk) < 2:
                break
            index = torch.arange(start, start + len(chunk), device=device)  # (b,)
            loss = float(objective(model, Batch(views=views(chunk, generator), index=index)))
            total, count = total + loss * len(chunk), count + len(chunk)
    finally:
        model.train(was_training[0])
        objective.train(was_training[1])
    if count == 0:
        raise UserError(f"need at least 2 held-out images for the proxy loss, got {len(images)}")
    return total / count


class ProxyEvaluator:
    """Scores architectures of `task.space` by the CSNAS proxy (callable: arch -> TrialOutcome).

    Raises from `__call__`: TrainingDiverged (NaN/Inf loss, or a non-finite held-out loss)
    and whatever building or training the network raises; the search records those as
    failed trials.
    """

    def __init__(self, task: SearchTask, config: ProxyConfig | None = None) -> None:
        self.task = task
        self.config = config or ProxyConfig()
        train_index = subset_index(len(task.images), self.config.num_images, task.seed, "num_images")
        self.images = task.images[train_index]
        self.labels = None if task.labels is None else task.labels[train_index]
        holdout_index = subset_index(len(task.holdout_images), self.config.num_holdout, task.seed + 1, "num_holdout")
        self.holdout = task.holdout_images[holdout_index]
        precision = resolve_precision_name(task.train.precision, task.train.device, BF16_KEEPS_QUALITY)
        self.train_config: TrainConfig = replace(task.train, progress=False, seed=task.seed, precision=precision)
        probe = create_objective(task.objective)
        self.views = VIEWS.create(task.views or probe.view_recipe)
        if self.config.loss == "holdout":
            self._check_holdout_defined(probe)

    def _check_holdout_defined(self, probe: Objective) -> None:
        """Fail before any trial when the held-out loss cannot be computed for this objective."""
        if probe.needs_labels:
            raise UserError(f"objective {self.task.objective!r} needs labels; score it with proxy loss 'train'")
        model = self.task.space.build(self.task.space.sample(random.Random(0)))
        probe.setup(model, feature_dim_of(model), len(self.images))
        if has_per_image_state(probe, len(self.images)):
            raise UserError(
                f"objective {self.task.objective!r} keeps one state row per training image (a memory "
                "bank), so its held-out loss is undefined; use proxy loss 'train'"
            )

    def __call__(self, arch: Architecture) -> TrialOutcome:
        started = time.perf_counter()
        with seeded(self.task.seed):
            model = self.task.space.build(arch)
        num_parameters = sum(p.numel() for p in model.parameters())
        objective = create_objective(self.task.objective)
        result = train(model, objective, self.images, self.views, self.train_config, labels=self.labels)
        details = {
            "train_loss": result.final_loss,
            "train_seconds": result.seconds,
            "images_per_second": result.images_per_second,
            "num_parameters": float(num_parameters),
        }
        if self.config.loss == "holdout":
            details["holdout_loss"] = holdout_loss(
                model, objective, self.holdout, self.views, self.config.eval_batch_size, self.task.seed
            )
            loss = details["holdout_loss"]
        else:
            loss = result.final_loss
        if not math.isfinite(loss):
            raise TrainingDiverged(f"proxy loss of {arch.key} is {loss}")
        details["seconds"] = time.perf_counter() - started
        return TrialOutcome(loss=float(loss), details=details)


class RatingEvaluator:
    """A trial scored by a label-free rating at initialisation: loss = minus the rating,
    several signals put on one scale by a fixed seeded reference sample (`ReferenceScale`)."""

    def __init__(self, task: SearchTask, config: ProxyConfig) -> None:
        self.rater = create_rater(task, *rating_for(task.space.name, config.ranker, config.rating_batch_size))
        self.task, self.config = task, config
        self.scale: ReferenceScale | None = None

    def __call__(self, arch: Architecture) -> TrialOutcome:
        started = time.perf_counter()
        if self.scale is None:  # built on the first trial, identically on every worker and resume
            self.scale = ReferenceScale(self.rater, reference_sample(self.task.space, self.config.reference, self.task.seed))
        score, values = self.scale.score(arch)
        if not math.isfinite(score):
            raise TrainingDiverged(f"rating of {arch.key} is {score}")
        return TrialOutcome(loss=-score, details={**values, "seconds": time.perf_counter() - started})


def make_evaluator(task: SearchTask, config: ProxyConfig) -> Evaluate:
    """The trial objective `config.trial_objective` names: the CSNAS proxy or a rating."""
    return RatingEvaluator(task, config) if config.trial_objective == "rating" else ProxyEvaluator(task, config)


__all__ = [
    "LOSSES",
    "TRIAL_OBJECTIVES",
    "Evaluate",
    "ProxyConfig",
    "ProxyEvaluator",
    "RatingEvaluator",
    "make_evaluator",
    "TrialOutcome",
    "has_per_image_state",
    "holdout_loss",
    "subset_index",
]

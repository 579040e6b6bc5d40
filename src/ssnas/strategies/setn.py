"""SETN, label-free: a template network (weight-sharing supernet) and a learned evaluator.

Dong & Yang, "One-Shot Neural Architecture Search via Self-Evaluated Template
Network", ICCV 2019; code: D-X-Y/AutoDL-Projects (xautodl). Each training step:

1. weight step (the loop): one architecture sampled uniformly, only its path
   runs, the objective's loss (SimCLR/BYOL, or CE as the supervised reference)
   updates the shared weights;
2. evaluator step (`SetnHook.after_step`): the softmax(alpha)-weighted mixture of
   all ops runs on a held-out batch and Adam updates alpha only.

Then the top-K architectures by log p(a) are rated on the shared weights with a
label-free score on held-out images (identical views for every candidate), and
the best is kept. The rating signal is configurable (`ssnas.strategies.supernet_rating`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.objectives import Batch, Objective, create_objective
from ssnas.spaces import Architecture, SearchSpace, SupportsSupernet
from ssnas.strategies import STRATEGIES
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask, Strategy
from ssnas.strategies.settings import (
    DEFAULT_OBJECTIVE, PRESETS, SUPERNET_FLOOR, SUPERNET_SIZED, TRAINING, ImageFloor, Training, fill, given,
    settings_for, sized, supernet_size,
)  # fmt: skip
from ssnas.spaces.budget import Constraint
from ssnas.strategies.evaluator import ArchitectureDistribution
from ssnas.strategies.supernet_rating import RatingConfig, rate_architectures
from ssnas.training.distributed import process_group
from ssnas.training.loop import TrainResult, train
from ssnas.training.precision import resolve_device, resolve_precision
from ssnas.training.seeding import seeded

log = logging.getLogger(__name__)

# bf16 training of the template moves signals rated on it by up to 0.13 Spearman, either way (MeCo +
# NASWOT, benchmarks/results/setn_quick.json and issue 28), while the default rating, led by signals
# at initialisation, kept its quality; `--signals` may name template signals, so `auto` trains in fp32.
BF16_KEEPS_QUALITY = False


@dataclass(frozen=True)
class SetnConfig:
    """SETN settings (defaults from AutoDL-Projects' NB201 search scripts)."""

    select_num: int = 100  # K candidates rated
    candidates: str = "sample"  # "sample": K distinct draws from p(a) (paper); "top-k": K most probable (code)
    evaluator_lr: float = 3e-4
    evaluator_betas: tuple[float, float] = (0.5, 0.999)
    evaluator_weight_decay: float = 1e-3
    evaluator_every: int = 1  # evaluator step every n weight steps (0 = never)
    supernet: dict[str, Any] = field(default_factory=dict)  # e.g. {"C": 16, "N": 5}
    rating: RatingConfig = field(default_factory=RatingConfig)


class SetnHook:
    """Uniform path per weight step; an Adam step on the evaluator's logits after it."""

    def __init__(
        self,
        space: SearchSpace,
        supernet: nn.Module,
        objective: Objective,
        evaluator: ArchitectureDistribution,
        holdout: torch.Tensor,
        holdout_labels: torch.Tensor | None,
        views: Any,
        config: SetnConfig,
        precision: Any,
        seed: int,
    ) -> None:
        self.space, self.supernet, self.objective, self.evaluator = space, supernet, objective, evaluator
        self.holdout, self.holdout_labels, self.views = holdout, holdout_labels, views
        self.config, self.precision = config, precision
        self.optimizer = torch.optim.Adam(
            evaluator.parameters(), lr=config.evaluator_lr, betas=config.evaluator_betas,
            weight_decay=config.evaluator_weight_decay,
        )
        self.generator = torch.Generator(device=holdout.device).manual_seed(seed + 2)
        self.options = [list(opts) for opts in space.choices().values()]

    def model_kwargs(self, step: int, generator: torch.Generator) -> dict[str, Any]:
        picks = [int(torch.randint(len(opts), (1,), generator=generator)) for opts in self.options]
        return {"arch": self.space.make([opts[i] for opts, i in zip(self.options, picks)])}

    def after_step(self, step: int, batch: Batch) -> None:
        every = self.config.evaluator_every
        if every <= 0 or (step + 1) % every:
            return
        group = process_group()  # under torchrun: draw the global batch, keep this process's rows
        size = batch.index.shape[0] * (group.world_size if group is not None else 1)
        index = torch.randint(self.holdout.shape[0], (size,), generator=self.generator, device=self.holdout.device)
        views = self.views(self.holdout[index], self.generator)
        if group is not None:
            index, views = group.shard(index), [group.shard(v) for v in views]
        if batch.views[0].is_contiguous(memory_format=torch.channels_last):  # match the weight step's layout
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        labels = self.holdout_labels[index] if self.holdout_labels is not None else None
        with self.precision.autocast():
            weights = self.evaluator.probabilities().to(views[0].device)
            loss = self.objective(self.supernet, Batch(views, index, labels), op_weights=weights)
        (grad,) = torch.autograd.grad(loss, self.evaluator.logits)
        self.optimizer.zero_grad(set_to_none=True)
        self.evaluator.logits.grad = grad
        if group is not None:
            group.average_gradients([self.evaluator.logits])  # the global batch's gradient
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.evaluator.load_state_dict(state["evaluator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


@dataclass
class TrainedTemplate:
    """The outcome of SETN's training phase, reused for rating."""

    supernet: nn.Module
    objective: Objective
    evaluator: ArchitectureDistribution
    result: TrainResult


@STRATEGIES.register("setn")
class SETN:
    """Self-Evaluated Template Network with label-free (or supervised) objectives."""

    def __init__(self, config: SetnConfig | None = None, **overrides: Any) -> None:
        settings = {**asdict(config or SetnConfig()), **overrides}  # asdict turns `rating` into a dict
        rating = settings["rating"]
        settings["rating"] = rating if isinstance(rating, RatingConfig) else RatingConfig(**rating)
        self.config = SetnConfig(**settings)

    def train_template(self, task: SearchTask) -> TrainedTemplate:
        space = task.space
        if not isinstance(space, SupportsSupernet):
            raise UserError(f"SETN needs a space with a weight-sharing supernet; {space.name!r} has none")
        objective = create_objective(task.objective)
        if getattr(objective, "uses_memory_bank", False):
            raise UserError(f"objective {task.objective!r} keeps a per-image memory bank; SETN supports simclr, byol, supervised")
        if objective.needs_labels and (task.labels is None or task.holdout_labels is None):
            raise UserError(f"objective {task.objective!r} needs labels; the data has none")
        with seeded(task.seed):
            supernet = space.build_supernet(**self.config.supernet)
        evaluator = ArchitectureDistribution(space, generator=torch.Generator().manual_seed(task.seed))
        views = VIEWS.create(task.views or objective.view_recipe)
        device = resolve_device(task.train.device)
        precision = resolve_precision(task.train.precision, device, BF16_KEEPS_QUALITY)
        hook = SetnHook(
            space, supernet, objective, evaluator, task.holdout_images.to(device),
            task.holdout_labels.to(device) if task.holdout_labels is not None else None,
            views, self.config, precision, task.seed,
        )
        result = train(
            supernet, objective, task.images, views, replace(task.train, precision=precision.name), labels=task.labels,
            out_dir=task.out_dir, resume=task.resume, hooks=hook,
        )
        return TrainedTemplate(supernet, objective, evaluator, result)

    def select_candidates(self, evaluator: ArchitectureDistribution, seed: int, budget: Constraint | None = None) -> list[Architecture]:
        """K candidates from the evaluator, sampled (default) or the most probable; within `budget`."""
        k, accept = self.config.select_num, (budget.admits if budget is not None else None)
        if self.config.candidates == "top-k":
            ranked = [arch for arch, _ in evaluator.top_k(k if budget is None else 50 * k)]
            return [arch for arch in ranked if accept is None or accept(arch)][:k]
        if self.config.candidates == "sample":
            return evaluator.sample_distinct(k, torch.Generator().manual_seed(seed + 4), accept=accept)
        raise UserError(f"unknown candidate selection {self.config.candidates!r}; choose 'sample' or 'top-k'")

    def rate(self, task: SearchTask, archs: Sequence[Architecture], template: TrainedTemplate | None = None) -> list[ScoredArch]:
        template = template or self.train_template(task)
        return rate_architectures(
            task.space, template.supernet, template.objective, archs, task.holdout_images,
            self.config.rating, task.train, seed=task.seed, holdout_labels=task.holdout_labels,
        )

    def search(self, task: SearchTask) -> SearchResult:
        template = self.train_template(task)
        candidates = self.select_candidates(template.evaluator, task.seed, task.budget)
        if not candidates:
            raise UserError("SETN's evaluator proposed no architecture within the budget; relax the budget")
        log_probs = {arch: template.evaluator.log_prob(arch) for arch in candidates}
        scored = self.rate(task, candidates, template)
        scored = [ScoredArch(s.arch, s.score, {**s.details, "log_prob": log_probs[s.arch]}) for s in scored]
        ranked = sorted(scored, key=lambda s: s.score, reverse=True)
        info = {
            "train_history": template.result.history,
            "train_images_per_second": template.result.images_per_second,
            "train_seconds": template.result.seconds,
            "op_probabilities": {
                name: dict(zip(opts, template.evaluator.probabilities()[e].tolist()))
                for e, (name, opts) in enumerate(task.space.choices().items())
            },
        }
        return SearchResult(best=ranked[0], candidates=ranked, info=info)


@settings_for("setn")
@dataclass(frozen=True)
class SetnSettings(Training):
    """SETN: an SSL-trained supernet and a learned evaluator (`SetnConfig`).

    signals: what rates a candidate on the shared weights (`ssnas.strategies.supernet_rating.ALL_SIGNALS`).
    channels / cells: the nb201 supernet's C and N.
    """

    bf16_keeps_quality: ClassVar[bool] = BF16_KEEPS_QUALITY

    objective: str | None = None
    select_num: int | None = None
    evaluator_every: int | None = None
    signals: tuple[str, ...] | None = None
    channels: int | None = None
    cells: int | None = None

    def __post_init__(self) -> None:
        if self.signals is not None:
            object.__setattr__(self, "signals", tuple(self.signals))

    def options(self, space: str) -> tuple[str, ...]:
        return ("objective", *TRAINING, "select_num", "evaluator_every", "signals", *sized(space, SUPERNET_SIZED))

    def resolve(self, space: str, preset: str) -> SetnSettings:
        return fill(self, self.options(space), {**PRESETS[preset], "objective": DEFAULT_OBJECTIVE})

    def create(self, name: str, space: str, preset: str) -> Strategy:
        return SETN(SetnConfig(select_num=given(self.select_num), evaluator_every=given(self.evaluator_every),
                               supernet=supernet_size(self.channels, self.cells),
                               rating=RatingConfig(signals=given(self.signals))))  # fmt: skip

    def scored_by(self) -> str:
        return f"{self.objective} on a shared supernet, candidates rated by {' + '.join(self.signals or ())}"

    def image_floor(self, space: str) -> ImageFloor:
        return ImageFloor(*SUPERNET_FLOOR)


__all__ = ["BF16_KEEPS_QUALITY", "SETN", "SetnConfig", "SetnHook", "SetnSettings", "TrainedTemplate"]

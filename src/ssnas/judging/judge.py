"""Judge one candidate: train it briefly with a self-supervised objective, then measure it.

The second stage of the two-stage search (`--strategy two-stage`, `ssnas.strategies.two_stage`) and
`benchmarks/bench_shortlist.py` call `judge_network`. A candidate is trained from scratch by
the one training loop on the user's unlabeled images for `image_passes` backbone passes
(rotation: 4 per image and step; SimCLR: 2) with SGD, a short warm-up and a cosine schedule,
then measured on held-out images it never trained on:

* the pretext task on held-out images: rotation accuracy and loss (UnNAS, ECCV 2020), or the
  held-out NT-Xent loss for SimCLR (CSNAS's objective), or, as a labelled reference only,
  supervised accuracy;
* the training curve: mean loss over the run (area), mean of its last tenth, slope of its
  second half (loss per unit of progress);
* representation statistics (`ssnas.judging.statistics`) of the backbone features;
* training-free signals of `ssnas.rating` re-measured on the trained weights.

Every value is oriented so that higher is better in `Judgement.signals` (losses negated),
and `SIGNAL_NAMES` lists them. Training is a checkpointed unit: killed and resumed
(`resume=True` with the same `out_dir`) it ends with the same weights and the same signals.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.judging.statistics import alignment, neighbour_agreement, rankme, uniformity
from ssnas.objectives import OBJECTIVES, create_objective
from ssnas.objectives.base import Batch, Objective, forward_features_of
from ssnas.objectives.rotation import RotationPrediction
from ssnas.rating.engine import frozen_batch_norm, network_signals
from ssnas.training.loop import TrainConfig, ViewMaker, train
from ssnas.training.precision import resolve_precision_name

log = logging.getLogger(__name__)

# The judge's brief training decides its signal; bf16 was not measured to keep the judge's
# quality, so `auto` trains in fp32 (`ssnas.training.precision`).
BF16_KEEPS_QUALITY = False

JUDGE_OBJECTIVES = ("rotation", "simclr", "supervised")
# Training-free signals re-measured on the trained weights (prefix "trained-").
TRAINED_SIGNALS = ("meco", "naswot", "az-expressivity", "az-progressivity", "az-trainability")
CURVE_SIGNALS = ("curve-area", "curve-final", "curve-slope")
TRAINED_SIGNAL_IMAGES = 64  # held-out images the trained signals are measured on
STATISTICS = ("alignment", "uniformity", "rankme", "neighbour-agreement")
SIGNAL_NAMES = (
    ("pretext-accuracy", "pretext-loss") + CURVE_SIGNALS + STATISTICS + tuple(f"trained-{n}" for n in TRAINED_SIGNALS)
)


@dataclass(frozen=True)
class JudgeConfig:
    """How one candidate is trained and measured (plain values, so it round-trips through YAML).

    objective:     "rotation" (default, UnNAS's pretext task), "simclr" (CSNAS's contrastive
                   loss) or "supervised" (labelled reference, never in a label-free search).
    image_passes:  backbone passes per candidate (image x views or rotations); the training cost.
    batch_passes:  backbone passes per step (rotation: 32 images x 4; SimCLR: 64 images x 2).
    holdout:       held-out images measured after training (at most this many).
    trained_signals: whether to re-measure `TRAINED_SIGNALS` on the trained weights.
    """

    objective: str = "rotation"
    image_passes: int = 16_000
    batch_passes: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.05
    holdout: int = 512
    precision: str = "auto"
    trained_signals: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.objective not in JUDGE_OBJECTIVES:
            raise UserError(f"unknown judge objective {self.objective!r}; choose from: {', '.join(JUDGE_OBJECTIVES)}")
        if self.image_passes < self.batch_passes or self.batch_passes < 8:
            raise UserError(f"the judge needs batch_passes >= 8 and image_passes >= batch_passes "
                            f"(one step), got {self.batch_passes} and {self.image_passes}")  # fmt: skip

    def least_images(self) -> tuple[int, int]:
        """(training, held-out) images the judge needs: one step's batch; the trained signals' batch."""
        passes_per_image = int(getattr(OBJECTIVES.get(self.objective), "passes_per_image", 2))
        return self.steps(passes_per_image)[0], TRAINED_SIGNAL_IMAGES

    def steps(self, passes_per_image: int) -> tuple[int, int]:
        """(images per step, optimizer steps) for an objective with `passes_per_image`."""
        batch = max(2, self.batch_passes // passes_per_image)
        return batch, max(1, math.ceil(self.image_passes / (batch * passes_per_image)))


@dataclass
class Judgement:
    """One judged candidate: `signals` (higher is better), its training curve and cost."""

    signals: dict[str, float]
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    train_seconds: float = 0.0
    passes_per_second: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Judgement:
        return cls(**payload)


def judge_network(
    network: nn.Module,
    images: torch.Tensor,
    holdout: torch.Tensor,
    config: JudgeConfig,
    out_dir: Path | None = None,
    resume: bool = False,
    labels: torch.Tensor | None = None,
    holdout_labels: torch.Tensor | None = None,
    device: str = "auto",
) -> Judgement:
    """Train `network` (freshly initialised) with `config.objective` on `images` and measure it.

    Args:
        network: has `feature_dim` and `forward_features(x) -> (B, D)`.
        images, holdout: (N, 3, H, W) and (M, 3, H, W) uint8, disjoint.
        out_dir: where the training checkpoint goes (None: no checkpoint).
        labels, holdout_labels: only for the supervised reference objective.
    """
    started = time.perf_counter()
    if len(holdout) < 8:
        raise UserError(f"the judge needs at least 8 held-out images, got {len(holdout)}")
    objective = create_objective(config.objective)
    batch, steps = config.steps(objective.passes_per_image)
    used = min(len(images), batch * steps)
    if used < batch:
        raise UserError(f"the judge needs at least {batch} training images per step, got {len(images)}")
    images = images[:used]
    labels = labels[:used] if labels is not None else None
    steps_per_epoch = used // batch
    train_config = TrainConfig(
        epochs=math.ceil(steps / steps_per_epoch), batch_size=batch, optimizer="sgd", lr=config.lr,
        momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay,
        warmup_epochs=config.warmup_fraction * steps / steps_per_epoch,
        precision=resolve_precision_name(config.precision, str(device), BF16_KEEPS_QUALITY),
        device=device, seed=config.seed, max_steps=steps, progress=False,
    )  # fmt: skip
    views = VIEWS.create(objective.view_recipe)
    result = train(network, objective, images, views, train_config, labels=labels, out_dir=out_dir, resume=resume)
    held = holdout[: config.holdout]
    held_labels = holdout_labels[: config.holdout] if holdout_labels is not None else None
    signals = _pretext(network, objective, views, held, held_labels, config.seed)
    signals.update(_curve(result.losses))
    signals.update(_statistics(network, held, config.seed))
    if config.trained_signals:
        signals.update(_trained_signals(network, held, config.seed))
    return Judgement(
        signals={k: float(v) for k, v in signals.items()},
        losses=list(result.losses),
        steps=result.steps,
        seconds=time.perf_counter() - started,
        train_seconds=result.seconds,
        passes_per_second=result.images_per_second * objective.passes_per_image,
        config=asdict(config),
    )


def _trained_signals(network: nn.Module, held: torch.Tensor, seed: int) -> dict[str, float]:
    """`TRAINED_SIGNALS` on the trained weights, 64 held-out images; NaN (rated last) where a family
    cannot run on this network (logged), so one signal never costs the candidate its judgement."""
    batch = held[:TRAINED_SIGNAL_IMAGES].to(_device_of(network))
    first = VIEWS.create("identity")(batch, torch.Generator().manual_seed(0))[0]
    values: dict[str, float] = {}
    for name in TRAINED_SIGNALS:
        try:
            values[f"trained-{name}"] = network_signals(network, [name], first, seed=seed)[name][0]
        except (RuntimeError, ValueError) as error:
            log.warning("trained-%s cannot be measured on this network (%s); rated last", name, error)
            values[f"trained-{name}"] = math.nan
    return values


def _device_of(network: nn.Module) -> torch.device:
    return next(network.parameters()).device


@torch.no_grad()
def _pretext(network: nn.Module, objective: Objective, views: ViewMaker, held: torch.Tensor,
             held_labels: torch.Tensor | None, seed: int) -> dict[str, float]:  # fmt: skip
    """The objective's own task on held-out images (BN on batch statistics, running ones kept)."""
    device = _device_of(network)
    generator = torch.Generator(device=device).manual_seed(seed + 7)
    plain = VIEWS.create("identity")
    losses, correct, count = [], 0, 0
    with frozen_batch_norm(network), frozen_batch_norm(objective):
        for start in range(0, len(held), 256):
            chunk = held[start : start + 256].to(device)
            if isinstance(objective, RotationPrediction):
                logits, targets = objective.logits(network, plain(chunk, generator)[0])
            elif objective.needs_labels:
                assert held_labels is not None, "the supervised reference needs held-out labels"
                classifier = cast(nn.Module, objective.classifier)  # the supervised reference's head
                logits = classifier(forward_features_of(network, plain(chunk, generator)[0])).float()
                targets = held_labels[start : start + 256].to(device)
            else:  # a self-supervised loss without a task to score (SimCLR: held-out NT-Xent)
                index = torch.arange(start, start + len(chunk), device=device)
                losses.append(float(objective(network, Batch(views=views(chunk, generator), index=index))) * len(chunk))
                count += len(chunk)
                continue
            losses.append(float(F.cross_entropy(logits, targets, reduction="sum")))
            correct += int((logits.argmax(dim=1) == targets).sum())
            count += len(targets)
    has_task = isinstance(objective, RotationPrediction) or objective.needs_labels
    return {"pretext-loss": -sum(losses) / count, "pretext-accuracy": correct / count if has_task else math.nan}


def _curve(losses: list[float]) -> dict[str, float]:
    """Training-curve signals (higher is better): minus the mean loss, minus the mean of the
    last tenth, minus the slope of the second half (loss per unit of the run)."""
    if not losses:
        return {name: math.nan for name in CURVE_SIGNALS}
    values = np.asarray(losses, dtype=float)
    tail = values[-max(1, len(values) // 10) :]
    second = values[len(values) // 2 :]
    slope = float(np.polyfit(np.linspace(0.5, 1.0, len(second)), second, 1)[0]) if len(second) > 1 else 0.0
    return {"curve-area": -float(values.mean()), "curve-final": -float(tail.mean()), "curve-slope": -slope}


@torch.no_grad()
def _statistics(network: nn.Module, held: torch.Tensor, seed: int) -> dict[str, float]:
    """Representation statistics of backbone features of two SimCLR views of `held` (BN batch statistics)."""
    device = _device_of(network)
    generator = torch.Generator(device=device).manual_seed(seed + 11)
    views = VIEWS.create("simclr")
    firsts, seconds = [], []
    with frozen_batch_norm(network):
        for start in range(0, len(held), 256):
            one, two = views(held[start : start + 256].to(device), generator)
            firsts.append(forward_features_of(network, one).float().cpu())
            seconds.append(forward_features_of(network, two).float().cpu())
    first, second = torch.cat(firsts), torch.cat(seconds)  # (M, D) each
    return {
        "alignment": -alignment(first, second),
        "uniformity": -uniformity(first),
        "rankme": rankme(first),
        "neighbour-agreement": neighbour_agreement(first, second),
    }


__all__ = ["JUDGE_OBJECTIVES", "SIGNAL_NAMES", "JudgeConfig", "Judgement", "judge_network"]

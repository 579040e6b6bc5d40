"""Rating candidates without labels, on shared weights or at initialisation.

Every candidate sees the same held-out images and the same augmented views, so
scores differ only through the architecture. BN runs on batch statistics (as
during search) with running statistics frozen, so rating never changes the
supernet and the order of candidates does not matter. Several signals combine
by their mean normalised rank over the candidate set (higher = better).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.faults import fault_point
from ssnas.objectives import Batch, Objective
from ssnas.spaces import Architecture, SearchSpace
from ssnas.strategies.base import ScoredArch
from ssnas.strategies.signals import SIGNALS
from ssnas.training.loop import TrainConfig
from ssnas.training.precision import resolve_device, resolve_precision
from ssnas.training.progress import track
from ssnas.training.seeding import seeded

SUPERNET_SIGNALS = ("ssl-loss", "accuracy", *SIGNALS.names())
INIT_SIGNALS = tuple(f"init-{name}" for name in SIGNALS.names())
STRUCTURE_SIGNALS = ("params",)
ALL_SIGNALS = (*SUPERNET_SIGNALS, *INIT_SIGNALS, *STRUCTURE_SIGNALS)


@dataclass(frozen=True)
class RatingConfig:
    """How candidates are rated.

    signals: names from `ALL_SIGNALS`; "ssl-loss" = minus the objective's loss on
        held-out views (SETN's one-batch rating, label-free); "accuracy" = held-out
        top-1 (supervised reference only); SIGNALS names run on the supernet path;
        "init-<name>" on the standalone network at initialisation; "params" counts.
    batches, batch_size: held-out images used, identical for every candidate.
    """

    signals: tuple[str, ...] = ("meco", "naswot")  # chosen on a development sample; see README
    batches: int = 2
    batch_size: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals", tuple(self.signals))
        unknown = [s for s in self.signals if s not in ALL_SIGNALS]
        if unknown or not self.signals:
            raise UserError(f"unknown rating signal(s) {unknown}; choose from: {', '.join(ALL_SIGNALS)}")


@contextmanager
def frozen_batch_norm(model: nn.Module) -> Iterator[None]:
    """Train-mode BN (batch statistics); running statistics are put back afterwards."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in norms]
    was_training = model.training
    model.train()
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (training, buffers) in zip(norms, saved):
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)
                m.train(training)
        model.train(was_training)


def combine_by_rank(columns: dict[str, list[float]]) -> list[float]:
    """Mean over signals of each candidate's rank in (0, 1]; one signal = its raw value."""
    if len(columns) == 1:
        return list(next(iter(columns.values())))
    from scipy.stats import rankdata  # imported late: scipy.stats slows CLI start

    ranks = [rankdata(values) / len(values) for values in columns.values()]
    return [float(sum(r[i] for r in ranks) / len(ranks)) for i in range(len(ranks[0]))]


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
    """Score every architecture with `config.signals` (details keep each signal's value).

    `report`: progress lines for this call (off where the caller reports its own stage, e.g.
    evolution rating one child at a time)."""
    if not archs:
        return []
    device = resolve_device(train_config.device)
    precision = resolve_precision(train_config.precision, device)
    generator = torch.Generator().manual_seed(seed + 3)
    order = torch.randperm(holdout.shape[0], generator=generator)
    size = min(config.batch_size, holdout.shape[0])
    index_batches = [order[i * size : (i + 1) * size] for i in range(min(config.batches, holdout.shape[0] // size))]
    plain = VIEWS.create("identity")
    images = [plain(holdout[idx].to(device), generator)[0] for idx in index_batches]
    columns: dict[str, list[float]] = {name: [] for name in config.signals}
    pairs = ((name, arch) for name in config.signals for arch in archs)
    total = len(config.signals) * len(archs)
    for name, arch in track(pairs, "rating", total, "signal values") if report else pairs:
        fault_point("rate")  # tests only
        columns[name].append(_signal(name, space, supernet, objective, arch, images, index_batches, holdout,
                                     holdout_labels, device, precision, seed))  # fmt: skip
    scores = combine_by_rank(columns)
    return [
        ScoredArch(arch, score, {name: columns[name][i] for name in columns})
        for i, (arch, score) in enumerate(zip(archs, scores))
    ]


def _signal(
    name: str, space: SearchSpace, supernet: nn.Module | None, objective: Objective | None, arch: Architecture,
    images: list[torch.Tensor], index_batches: list[torch.Tensor], holdout: torch.Tensor,
    holdout_labels: torch.Tensor | None, device: torch.device, precision: Any, seed: int,
) -> float:
    if name == "params":
        count: Callable[[Architecture], float] | None = getattr(space, "num_parameters", None)
        if count is None:
            raise UserError(f"space {space.name!r} cannot count parameters")
        return float(count(arch))
    if name.startswith("init-"):
        with seeded(seed):
            network = space.build(arch).to(device)
        with frozen_batch_norm(network):
            return SIGNALS.get(name.removeprefix("init-"))(network, images[0])
    if supernet is None:
        raise UserError(f"rating signal {name!r} needs a trained supernet")
    with frozen_batch_norm(supernet):
        if name in ("ssl-loss", "accuracy"):
            return _held_out(name, supernet, objective, arch, index_batches, holdout, holdout_labels, device,
                             precision, seed)  # fmt: skip
        return float(sum(SIGNALS.get(name)(supernet, x, arch=arch) for x in images) / len(images))


@torch.no_grad()
def _held_out(
    name: str, supernet: nn.Module, objective: Objective | None, arch: Architecture,
    index_batches: list[torch.Tensor], holdout: torch.Tensor, holdout_labels: torch.Tensor | None,
    device: torch.device, precision: Any, seed: int,
) -> float:
    if objective is None:
        raise UserError(f"rating signal {name!r} needs the training objective")
    views = VIEWS.create(objective.view_recipe)
    total = 0.0
    for b, idx in enumerate(index_batches):
        generator = torch.Generator(device=device).manual_seed(seed * 1000 + b)  # same views for every arch
        labels = holdout_labels[idx].to(device) if holdout_labels is not None else None
        batch = Batch(views(holdout[idx].to(device), generator), idx.to(device), labels)
        with precision.autocast():
            if name == "accuracy":
                if labels is None:
                    raise UserError("rating signal 'accuracy' needs labels (supervised reference only)")
                logits = objective.classifier(supernet.forward_features(batch.views[0], arch=arch))
                total += float((logits.argmax(dim=1) == labels).float().mean())
            else:
                total -= float(objective(supernet, batch, arch=arch))
    return total / len(index_batches)

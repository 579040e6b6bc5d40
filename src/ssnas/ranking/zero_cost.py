"""Label-free rankers: score architectures from networks at initialisation on real images.

A ranker is a name or an ensemble of names joined by '+':

* structural rankers from `RANKERS` (`params`, `flops`): no network, no images;
* network signals from `SIGNALS` (`meco`, `naswot`, `swap`, `az-expressivity`, `zico-ssl`,
  ...): each architecture's network is built with the same seed and scored on the same
  batch of unlabeled images;
* composites with their paper's aggregation, e.g. `az-nas` (Lee & Ham, CVPR 2024) =
  az-expressivity, az-progressivity, az-trainability and FLOPs combined by the log-rank rule.

Ensembles combine their parts by `aggregate`:
* `mean-rank`: mean over parts of rank/N (ties share the mean rank);
* `log-rank`: sum over parts of log(rank/N) (AZ-NAS's rule, punishes a part that ranks low).
Higher is better everywhere. The combined score is only comparable within one call.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.ranking.rankers import RANKERS
from ssnas.spaces import Architecture, SearchSpace, create_space
from ssnas.strategies.rating import frozen_batch_norm
from ssnas.strategies.signals import SIGNAL_GROUPS, SIGNALS
from ssnas.training.seeding import seeded


def _fractional_ranks(columns: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """rank/N of each column (ties share the mean rank)."""
    from scipy.stats import rankdata  # imported late: scipy.stats slows CLI start

    return [rankdata(_finite(c)) / len(c) for c in columns]


def _mean_rank(columns: Sequence[Sequence[float]]) -> list[float]:
    return [float(v) for v in np.mean(_fractional_ranks(columns), axis=0)]


def _log_rank(columns: Sequence[Sequence[float]]) -> list[float]:
    return [float(v) for v in np.sum(np.log(_fractional_ranks(columns)), axis=0)]


def _finite(values: Sequence[float]) -> np.ndarray:
    """NaN and -inf rank last, +inf first."""
    array = np.asarray(values, dtype=np.float64)
    low = np.nanmin(array[np.isfinite(array)]) - 1 if np.isfinite(array).any() else 0.0
    high = np.nanmax(array[np.isfinite(array)]) + 1 if np.isfinite(array).any() else 0.0
    return np.where(np.isnan(array) | (array == -np.inf), low, np.where(array == np.inf, high, array))


AGGREGATIONS: dict[str, Callable[[Sequence[Sequence[float]]], list[float]]] = {
    "mean-rank": _mean_rank,
    "log-rank": _log_rank,
}

# name -> (parts, aggregation): published combinations, used as one ranker.
COMPOSITES: dict[str, tuple[tuple[str, ...], str]] = {
    "az-nas": (("az-expressivity", "az-progressivity", "az-trainability", "flops"), "log-rank"),
    # ssnas's default: AZ-NAS's expressivity and progressivity with its trainability replaced by the
    # label-free ZiCo (NT-Xent gradients), log-rank; chosen on the NB201 development half (README).
    "az-nas-ssl": (("az-expressivity", "az-progressivity", "zico-ssl"), "log-rank"),
    # The NATS size space's default: AZ-NAS's expressivity with SynFlow, log-rank; the best
    # ensemble of up to three signals on the NATS development half (README).
    "az-synflow": (("az-expressivity", "synflow"), "log-rank"),
}


# The default of `ssnas rank` and of rating-based search (see the README for the measurement),
# and per space where its development half chose another.
DEFAULT_RANKER = "az-nas-ssl"
SPACE_DEFAULT_RANKERS: dict[str, str] = {"nats-size": "az-synflow"}


def default_ranker(space: str) -> str:
    """The ranker `ssnas rank` uses on `space` when none is given."""
    return SPACE_DEFAULT_RANKERS.get(space, DEFAULT_RANKER)


def threads_per_worker(workers: int) -> int:
    """This process's threads split among `workers` scoring processes (at least one each)."""
    return max(1, torch.get_num_threads() // workers)


# Per space, the network size the rankers build by default (smaller than the benchmark's own
# network where that kept the dev-half correlation and cut the cost; see the README).
PROXY_NETWORKS: dict[str, dict[str, int]] = {"nb201": {"C": 8, "N": 1}}
# Per space, images per network where it differs from `ZeroCostConfig.batch_size` (the NATS
# networks run at full size, so fewer images keep the cost per setting near NB201's).
PROXY_BATCH_SIZES: dict[str, int] = {"nats-size": 16}


def proxy_network(space: str, channels: int | None = None, cells: int | None = None) -> dict[str, int]:
    """Network-size overrides for rankers on `space`: its default proxy, then --channels/--cells (nb201)."""
    options = dict(PROXY_NETWORKS.get(space, {}))
    given = {"C": channels, "N": cells}
    if any(v is not None for v in given.values()) and space != "nb201":
        raise UserError(f"--channels/--cells size the nb201 network; space {space!r} has fixed widths")
    for key, value in given.items():
        if value is not None:
            if value < 1:
                raise UserError(f"network size {key} must be >= 1, got {value}")
            options[key] = value
    return options


def ranker_names() -> list[str]:
    """Every single ranker name (ensembles join these with '+')."""
    return sorted({*RANKERS.names(), *SIGNALS.names(), *COMPOSITES})


@dataclass(frozen=True)
class Ranker:
    """A parsed ranker: `parts` are names or nested composites, combined by `aggregate`."""

    text: str
    parts: tuple[str | Ranker, ...]
    aggregate: str

    def leaves(self) -> list[str]:
        names: list[str] = []
        for part in self.parts:
            for name in part.leaves() if isinstance(part, Ranker) else [part]:
                if name not in names:
                    names.append(name)
        return names

    def combine(self, columns: dict[str, list[float]]) -> list[float]:
        values = [part.combine(columns) if isinstance(part, Ranker) else columns[part] for part in self.parts]
        if len(values) == 1:  # a single signal keeps its values; -inf/NaN move just below the finite ones
            return [float(v) for v in _finite(values[0])]
        return AGGREGATIONS[self.aggregate](values)

    @property
    def needs_images(self) -> bool:
        return any(name in SIGNALS for name in self.leaves())


def parse_ranker(text: str, aggregate: str = "mean-rank") -> Ranker:
    """'meco', 'az-nas', 'meco+naswot' ... -> Ranker (UserError naming the choices if unknown)."""
    if aggregate not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {aggregate!r}; choose from: {', '.join(AGGREGATIONS)}")
    names = [name.strip() for name in text.split("+")]
    if not text.strip() or any(not name for name in names):
        raise UserError(f"malformed ranker {text!r}; join names with '+', e.g. meco+az-nas")
    parts: list[str | Ranker] = []
    for name in names:
        if name in COMPOSITES:
            inner, rule = COMPOSITES[name]
            parts.append(Ranker(name, inner, rule))
        elif name in RANKERS or name in SIGNALS:
            parts.append(name)
        else:
            raise UserError(f"unknown ranker {name!r}; choose from: {', '.join(ranker_names())}")
    return Ranker(text, tuple(parts), aggregate)


@dataclass(frozen=True)
class ZeroCostConfig:
    """How networks are scored.

    batch_size: unlabeled images per network (the same, seeded draw for every architecture).
    seed: weight initialisation seed (identical for every architecture) and image draw.
    space_options: overrides of the space's network size (nb201: C, N), so a smaller proxy
        network can stand in for the benchmark's; the ranking, not the network, is the result.
        None = the space's default proxy (`PROXY_NETWORKS`); {} = the space's networks as given.
    """

    batch_size: int = 32
    seed: int = 0
    space_options: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 4:
            raise UserError(f"ranker batch size must be >= 4, got {self.batch_size}")


@dataclass
class ZeroCostScores:
    """Per-architecture scores: `columns[name][i]` for each leaf, `score[i]` combined;
    `seconds[name][i]` the time of the pass that produced leaf `name` (shared within a group)."""

    archs: list[Architecture]
    columns: dict[str, list[float]]
    score: list[float]
    seconds: dict[str, list[float]]

    def seconds_per_arch(self, names: Sequence[str] | None = None) -> float:
        """Mean seconds per architecture of the passes behind `names` (default: all leaves)."""
        names = list(self.seconds) if names is None else names
        passes = {_pass_of(name) for name in names}
        firsts = [next(n for n in names if _pass_of(n) == p) for p in passes]
        return float(sum(np.mean(self.seconds[n]) for n in firsts)) if self.archs else 0.0


def _pass_of(name: str) -> str:
    group = SIGNAL_GROUPS.get(name)
    return group.__name__ if group is not None else name


def score_architectures(
    space: SearchSpace,
    archs: Sequence[Architecture],
    ranker: Ranker | str,
    images: torch.Tensor | None,
    config: ZeroCostConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> ZeroCostScores:
    """Score `archs` of `space` with `ranker` on unlabeled uint8 images (N,3,H,W).

    Every network is built under the same seed and sees the same image batch, so scores
    differ only through the architecture. `progress(done, total)` is called as architectures
    finish. `workers` > 1 scores chunks in that many processes, splitting this process's
    threads among them (small proxy networks use one process per core better than threads).
    """
    ranker = parse_ranker(ranker) if isinstance(ranker, str) else ranker
    config = config or ZeroCostConfig()
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    leaves = ranker.leaves()
    signals = [name for name in leaves if name in SIGNALS]
    batch = _image_batch(images, config, ranker.text) if signals else None
    options = PROXY_NETWORKS.get(space.name, {}) if config.space_options is None else config.space_options
    build_space = _resized(space, options) if options else space
    job = _ScoringJob(space, build_space, tuple(leaves), tuple(signals), batch, config.seed)
    if workers > 1 and len(archs) > 1:
        columns, seconds = _score_in_processes(job, list(archs), workers, progress)
    else:
        columns, seconds = job.score(archs, progress)
    return ZeroCostScores(list(archs), columns, ranker.combine(columns), seconds)


@dataclass(frozen=True)
class _ScoringJob:
    """What every architecture is scored with; picklable, so worker processes get a copy."""

    space: SearchSpace
    build_space: SearchSpace
    leaves: tuple[str, ...]
    signals: tuple[str, ...]
    batch: torch.Tensor | None
    seed: int

    def score(
        self, archs: Sequence[Architecture], progress: Callable[[int, int], None] | None = None
    ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        columns: dict[str, list[float]] = {name: [] for name in self.leaves}
        seconds: dict[str, list[float]] = {name: [] for name in self.leaves}
        for done, arch in enumerate(archs, start=1):
            for name in self.leaves:
                if name in RANKERS:
                    started = time.perf_counter()
                    columns[name].append(RANKERS.get(name)(self.space, [arch])[0])
                    seconds[name].append(time.perf_counter() - started)
            if self.signals and self.batch is not None:
                for name, (value, spent) in _network_signals(
                    self.build_space, arch, self.signals, self.batch, self.seed
                ).items():
                    columns[name].append(value)
                    seconds[name].append(spent)
            if progress is not None:
                progress(done, len(archs))
        return columns, seconds


def _score_in_processes(
    job: _ScoringJob, archs: list[Architecture], workers: int, progress: Callable[[int, int], None] | None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """`job.score` over chunks of `archs` in `workers` spawned processes; results in `archs` order."""
    threads = threads_per_worker(workers)
    chunk = max(1, min(32, len(archs) // (4 * workers)))
    starts = range(0, len(archs), chunk)
    parts: dict[int, tuple[dict[str, list[float]], dict[str, list[float]]]] = {}
    context = multiprocessing.get_context("spawn")  # fork after torch's thread pool started can hang
    with ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(threads,)) as pool:  # fmt: skip
        pending: dict[Future, int] = {pool.submit(job.score, archs[s : s + chunk]): s for s in starts}
        done = 0
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                start = pending.pop(future)
                parts[start] = future.result()
                done += len(archs[start : start + chunk])
                if progress is not None:
                    progress(done, len(archs))
    columns: dict[str, list[float]] = {name: [] for name in job.leaves}
    seconds: dict[str, list[float]] = {name: [] for name in job.leaves}
    for start in sorted(parts):
        for name in job.leaves:
            columns[name].extend(parts[start][0][name])
            seconds[name].extend(parts[start][1][name])
    return columns, seconds


def _image_batch(images: torch.Tensor | None, config: ZeroCostConfig, text: str) -> torch.Tensor:
    if images is None:
        raise UserError(f"ranker {text!r} scores networks on images: give --data FOLDER")
    if len(images) < config.batch_size:
        raise UserError(f"ranker batch size {config.batch_size} exceeds the {len(images)} images given")
    generator = torch.Generator().manual_seed(config.seed)
    index = torch.randperm(len(images), generator=generator)[: config.batch_size]
    return VIEWS.create("identity")(images[index], generator)[0]  # (B,3,H,W) normalised float


def _network_signals(
    space: SearchSpace, arch: Architecture, names: Sequence[str], batch: torch.Tensor, seed: int
) -> dict[str, tuple[float, float]]:
    """name -> (value, seconds) for `arch`'s network built at initialisation under `seed`."""
    started = time.perf_counter()
    with seeded(seed):
        network = space.build(space.parse(arch.key))
    build_seconds = time.perf_counter() - started
    values = network_signals(network, names, batch, seed)
    return {name: (value, spent + build_seconds) for name, (value, spent) in values.items()}


def network_signals(
    network: nn.Module, names: Sequence[str], batch: torch.Tensor, seed: int = 0, **forward_kwargs: Any
) -> dict[str, tuple[float, float]]:
    """name -> (value, seconds of the pass that computed it) of `SIGNALS` on one network (or one
    supernet path via `forward_kwargs`, e.g. arch=...). BN runs on batch statistics with its
    running statistics restored; signals of one group share a pass; NaN becomes -inf."""
    values: dict[str, tuple[float, float]] = {}
    with frozen_batch_norm(network):
        for name in names:
            if name in values:
                continue
            started = time.perf_counter()
            group = SIGNAL_GROUPS.get(name)
            if group is not None:
                result = group(network, batch, seed=seed, **forward_kwargs)
            else:
                result = {name: SIGNALS.get(name)(network, batch, **forward_kwargs)}
            spent = time.perf_counter() - started
            values.update({key: (float(value), spent) for key, value in result.items()})
    return {name: (-math.inf if math.isnan(values[name][0]) else values[name][0], values[name][1]) for name in names}


def _resized(space: SearchSpace, options: dict[str, int]) -> SearchSpace:
    """The same space with another network size (e.g. nb201 C=8, N=1)."""
    try:
        return create_space(space.name, **options)
    except TypeError as error:
        raise UserError(f"space {space.name!r} does not take {sorted(options)}: {error}") from None

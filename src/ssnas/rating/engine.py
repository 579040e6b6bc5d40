"""The one rating engine: every label-free signal of every command goes through here.

`ssnas rank`, evolution, TPE/random rating trials and SETN's `init-*` rating all call
`score_architectures`; SETN's and BossNAS's ratings on shared (trained) weights call
`network_signals` on the supernet path. So a signal's value for an architecture depends
only on (network size, images, seed), never on which command asked:

* images: `rating_batches(images, batch_size, seed)`, a seeded permutation of the given
  uint8 images cut into batches, normalised (identity view); signals at initialisation use
  the first batch;
* network: built once per architecture under `seeded(seed)` in the space the caller gives
  (its network size is the caller's choice: `ssnas rank` passes a proxy size, a search its
  own), run in float32 on the caller's device whatever the run's precision (autocast never
  touches a signal; SynFlow runs in float64);
* BN: batch statistics, running statistics restored afterwards (`frozen_batch_norm`);
* each signal family (`ssnas.rating.registry`) runs once per network for all of its columns;
* structural rankers (`params`, `flops`) are costs of the space's full-size network.

Non-finite values are rated last (`ssnas.rating.aggregate`) and counted in a warning.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

# One import per signal family module: registration happens on import.
from ssnas.rating import activation as _activation  # noqa: F401
from ssnas.rating import az_nas as _az_nas  # noqa: F401
from ssnas.rating import spectral as _spectral  # noqa: F401
from ssnas.rating import ssl_gradients as _ssl_gradients  # noqa: F401
from ssnas.rating import synflow as _synflow  # noqa: F401
from ssnas.rating import vkdnw as _vkdnw  # noqa: F401
from ssnas.data.datasets import resize_images
from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.rating.aggregate import Ranker, parse_ranker
from ssnas.rating.registry import SIGNALS
from ssnas.rating.structural import STRUCTURAL
from ssnas.spaces import Architecture, SearchSpace, create_space
from ssnas.training.seeding import seeded

log = logging.getLogger(__name__)

Columns = dict[str, list[float]]


@contextmanager
def frozen_batch_norm(model: nn.Module) -> Iterator[None]:
    """Train-mode BN (batch statistics); running statistics and modes are put back afterwards."""
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


def rating_batches(
    images: torch.Tensor, batch_size: int, seed: int, batches: int = 1, device: torch.device | str = "cpu",
    image_size: int | None = None,
) -> list[torch.Tensor]:
    """`batches` batches (B,3,H,W) of normalised float images drawn from uint8 images (N,3,H,W):
    one seeded permutation cut into consecutive slices (as many whole ones as fit, at least one).
    `image_size` S: the drawn images resized to SxS first (antialiased bilinear, as `load_dataset`)."""
    plain = VIEWS.create("identity")
    generator = torch.Generator().manual_seed(seed)
    draws = [images[index] for index in rating_indices(len(images), batch_size, seed, batches)]
    if image_size is not None and image_size != images.shape[-1]:
        draws = [resize_images(draw, image_size) for draw in draws]
    return [plain(draw.to(device), generator)[0] for draw in draws]


def rating_indices(count: int, batch_size: int, seed: int, batches: int = 1) -> list[torch.Tensor]:
    """The image indices behind `rating_batches`: a permutation of range(count) from a generator
    seeded with `seed`, cut into up to `batches` whole slices of `batch_size` (at least one)."""
    if count < batch_size:
        raise UserError(f"rating batch size {batch_size} exceeds the {count} images given")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return [order[b * batch_size : (b + 1) * batch_size] for b in range(max(1, min(batches, count // batch_size)))]


def network_signals(
    network: nn.Module, names: Sequence[str], batch: torch.Tensor, seed: int = 0, batch_statistics: bool = True,
    **forward_kwargs: Any,
) -> dict[str, tuple[float, float]]:
    """name -> (value, seconds of the family pass that computed it) on one network, or one supernet
    path selected by `forward_kwargs` (`arch=...`). `batch_statistics`: BN on batch statistics with
    running ones restored (default), else BN as the caller left it (BossNAS: recalibrated, eval).
    Autocast is switched off inside, so a caller's bf16 / fp16 region never reaches a signal."""
    values: dict[str, tuple[float, float]] = {}
    no_autocast = torch.autocast(device_type=batch.device.type, enabled=False)  # signals never run in bf16 / fp16
    for name in names:
        if name in values:
            continue
        family = SIGNALS.of(name)
        started = time.perf_counter()
        # BN statistics put back after every family: SynFlow reads the running statistics, which an
        # earlier family's train-mode pass would otherwise have moved (order-dependent values)
        with no_autocast, frozen_batch_norm(network) if batch_statistics else nullcontext():
            result = family.compute(network, batch.float(), seed=seed, **forward_kwargs)
        spent = time.perf_counter() - started
        values.update({key: (float(value), spent) for key, value in result.items()})
    return {name: values[name] for name in names}


@dataclass(frozen=True)
class EngineConfig:
    """How networks are rated.

    batch_size: unlabeled images per network (the same seeded draw for every architecture).
    seed: weight initialisation and image draw seed (identical for every architecture).
    device: where networks run ("cpu", "cuda", ...).
    """

    batch_size: int = 32
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.batch_size < 4:
            raise UserError(f"rating batch size must be >= 4, got {self.batch_size}")


@dataclass
class Scores:
    """Per-architecture values: `columns[name][i]` per leaf, `score[i]` combined (finite);
    `seconds[name][i]` the time of the pass behind leaf `name` (network build included);
    `nonfinite[name]` how many values of `name` were NaN or infinite (rated last)."""

    archs: list[Architecture]
    columns: Columns
    score: list[float]
    seconds: Columns
    nonfinite: dict[str, int] = field(default_factory=dict)

    def seconds_per_arch(self, names: Sequence[str] | None = None) -> float:
        """Mean seconds per architecture of the passes behind `names` (default: all leaves)."""
        return seconds_per_network(self.seconds, names) if self.archs else 0.0


def seconds_per_network(seconds: Columns, names: Sequence[str] | None = None) -> float:
    """Mean seconds per network of the passes behind `names` (default: all leaves), each family
    counted once whichever of its columns are named."""
    return float(sum(np.mean(seconds[n]) for n in pass_columns(list(seconds) if names is None else names)))


def pass_columns(names: Sequence[str]) -> list[str]:
    """One name per pass behind `names` (a family's first column; each structural name): summing the
    seconds of these counts every pass once."""
    passes = {_pass_of(name) for name in names}
    return [next(n for n in names if _pass_of(n) == p) for p in passes]


def _pass_of(name: str) -> str:
    return SIGNALS.of(name).name if name in SIGNALS else name


def score_architectures(
    space: SearchSpace,
    archs: Sequence[Architecture],
    ranker: Ranker | str,
    images: torch.Tensor | None,
    config: EngineConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> Scores:
    """Rate `archs` with `ranker`: networks built in `space` (at the size the caller made it),
    signals on a seeded batch of the uint8 images (N,3,H,W). `progress(done, total)` as
    architectures finish; `workers` > 1 rates chunks in that many spawned processes, splitting
    this process's threads among them (results in `archs` order, equal to one process)."""
    ranker = parse_ranker(ranker) if isinstance(ranker, str) else ranker
    config = config or EngineConfig()
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    job = rating_job(space, ranker, images, config)
    if workers > 1 and len(archs) > 1:
        columns, seconds = _rate_in_processes(job, list(archs), workers, progress)
    else:
        columns, seconds = job.rate(archs, progress)
    return Scores(list(archs), columns, ranker.combine(columns), seconds, count_nonfinite(columns))


def rating_job(space: SearchSpace, ranker: Ranker, images: torch.Tensor | None, config: EngineConfig) -> RatingJob:
    """What every architecture of one rating is rated with (`RatingJob.rate` rates a list)."""
    return RatingJob(space, tuple(ranker.leaves()), tuple(ranker.signals()), rating_batch(ranker, images, config),
                      config.seed)  # fmt: skip


def rating_batch(
    ranker: Ranker, images: torch.Tensor | None, config: EngineConfig, image_size: int | None = None
) -> torch.Tensor | None:
    """The one batch (B,3,H,W) every network is rated on (`rating_batches`' first), None when the
    ranker computes no signal; a data-free ranker without images gets zeros (only the shape counts)."""
    if not ranker.signals():
        return None
    if images is None:
        if ranker.needs_images:
            raise UserError(f"ranker {ranker.text!r} scores networks on images: give --data FOLDER")
        images = torch.zeros(config.batch_size, 3, 32, 32, dtype=torch.uint8)  # data-free: only the shape counts
    return rating_batches(images, config.batch_size, config.seed, device=config.device, image_size=image_size)[0]


def count_nonfinite(columns: Columns) -> dict[str, int]:
    """name -> how many of its values are NaN or infinite (names with none left out), each logged."""
    nonfinite = {name: int(sum(not math.isfinite(v) for v in values)) for name, values in columns.items()}
    nonfinite = {name: count for name, count in nonfinite.items() if count}
    for name, count in nonfinite.items():
        log.warning("signal %s: %d of %d value(s) not finite, rated last", name, count, len(columns[name]))
    return nonfinite


def add_signals(
    columns: Columns, seconds: Columns, network: nn.Module, signals: Sequence[str], batch: torch.Tensor, seed: int,
    built: float,
) -> None:
    """Append `network`'s value of each signal to `columns[name]`, and to `seconds[name]` the time of
    its family pass plus `built` (the seconds its network took to build)."""
    for name, (value, spent) in network_signals(network, signals, batch, seed).items():
        columns[name].append(value)
        seconds[name].append(spent + built)


@dataclass(frozen=True)
class RatingJob:
    """What every architecture is rated with; picklable, so worker processes get a copy."""

    space: SearchSpace
    leaves: tuple[str, ...]
    signals: tuple[str, ...]
    batch: torch.Tensor | None
    seed: int

    def rate(self, archs: Sequence[Architecture], progress: Callable[[int, int], None] | None = None) -> tuple[Columns, Columns]:
        columns: Columns = {name: [] for name in self.leaves}
        seconds: Columns = {name: [] for name in self.leaves}
        for done, arch in enumerate(archs, start=1):
            for name in self.leaves:
                if name in STRUCTURAL:
                    started = time.perf_counter()
                    columns[name].append(STRUCTURAL.get(name)(self.space, [arch])[0])
                    seconds[name].append(time.perf_counter() - started)
            if self.signals and self.batch is not None:
                started = time.perf_counter()
                network = build_network(self.space, arch, self.seed).to(self.batch.device)
                built = time.perf_counter() - started
                add_signals(columns, seconds, network, self.signals, self.batch, self.seed, built)
            if progress is not None:
                progress(done, len(archs))
        return columns, seconds


def build_network(space: SearchSpace, arch: Architecture, seed: int) -> nn.Module:
    """`arch`'s network in `space` (at `space`'s size), initialised under `seed`."""
    return initialised(lambda: space.build(space.parse(arch.key)), seed)


def initialised(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`factory()`'s network with its weights drawn under `seed` (the global RNG is left as it was):
    every network, of a space or any model, is initialised this way."""
    with seeded(seed):
        return factory()


def threads_per_worker(workers: int) -> int:
    """This process's threads split among `workers` rating processes (at least one each)."""
    return max(1, torch.get_num_threads() // workers)


# A rating process is replaced by a fresh one after this many chunks: its resident memory grew with
# the networks it had built (whole NATS-size: 389 -> 685 MB over 15,000 networks, about 130 MB of
# it the width of the later networks), and a restart (~3 s) every 64 chunks bounds it.
TASKS_PER_WORKER = 64


def rate_chunks(
    job: RatingJob, chunks: Iterable[tuple[int, list[Architecture]]], workers: int = 1
) -> Iterator[tuple[int, list[Architecture], Columns, Columns]]:
    """(index, archs, columns, seconds) of each (index, archs) chunk as it is rated: in this process
    for `workers` 1 (in order), else in that many spawned processes splitting this process's
    threads (in the order they finish). `chunks` is read lazily: at most 2 * `workers` chunks are
    held at a time, so the architectures of a long rating need never be in memory together."""
    if workers <= 1:
        for index, archs in chunks:
            yield index, archs, *job.rate(archs)
        return
    context = multiprocessing.get_context("spawn")  # fork after torch's thread pool started can hang
    with ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(threads_per_worker(workers),), max_tasks_per_child=TASKS_PER_WORKER) as pool:  # fmt: skip
        pending: dict[Future, tuple[int, list[Architecture]]] = {}
        waiting = iter(chunks)
        while True:
            for index, archs in itertools.islice(waiting, 2 * workers - len(pending)):
                pending[pool.submit(job.rate, archs)] = (index, archs)
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index, archs = pending.pop(future)
                yield index, archs, *future.result()


def _rate_in_processes(
    job: RatingJob, archs: list[Architecture], workers: int, progress: Callable[[int, int], None] | None
) -> tuple[Columns, Columns]:
    """`job.rate` over chunks of `archs` in `workers` spawned processes; results in `archs` order."""
    size = max(1, min(32, len(archs) // (4 * workers)))
    chunks = ((start, archs[start : start + size]) for start in range(0, len(archs), size))
    parts: dict[int, tuple[Columns, Columns]] = {}
    done = 0
    for start, part, part_columns, part_seconds in rate_chunks(job, chunks, workers):
        parts[start] = (part_columns, part_seconds)
        done += len(part)
        if progress is not None:
            progress(done, len(archs))
    columns: Columns = {name: [] for name in job.leaves}
    seconds: Columns = {name: [] for name in job.leaves}
    for start in sorted(parts):
        for name in job.leaves:
            columns[name].extend(parts[start][0][name])
            seconds[name].extend(parts[start][1][name])
    return columns, seconds


def resized(space: SearchSpace, options: dict[str, int]) -> SearchSpace:
    """The same space with another network size (e.g. nb201 C=8, N=1); `space` itself for {}."""
    if not options:
        return space
    try:
        return create_space(space.name, **options)
    except TypeError as error:
        raise UserError(f"space {space.name!r} does not take {sorted(options)}: {error}") from None

"""Rate a whole space into a run folder, one chunk at a time, safe to kill at any instant.

`ssnas rank --all | --sample N | --archs FILE --out DIR` (a folder) writes:

    DIR/config.yaml                 the rating's settings, written before any chunk
    DIR/ratings/chunk-00000.csv     architectures [0, S) of the selection: arch, each leaf signal's
    DIR/ratings/chunk-00001.csv     raw value, seconds (the rating passes' time); S = chunk_size
    ...
    DIR/scores.csv, report.html     written at the end, from every chunk

Why a SIGKILL at any instant is safe:

* each chunk file is written whole by `ssnas.atomic.write_atomic`: a temporary file in
  `ratings/`, flushed and fsynced, renamed onto `chunk-NNNNN.csv`, the folder fsynced. A chunk
  file therefore exists complete or not at all; a kill leaves at most a `.chunk-*.tmp` file,
  which the next run deletes, and loses only the chunks being rated (at most 2 x workers);
* the architecture order is a function of the settings alone (space, selection, seed; sampling
  is seeded, enumeration is ordered), so chunk k always holds the same architectures. `--resume`
  refuses other settings in one line (`ssnas.runfolder.check_run_folder`; `workers`, `data`,
  `table` and `metric` may change), regenerates the order, checks that every existing chunk holds
  exactly its architectures and signals, and rates only the missing chunks;
* the combined score is formed at the end over all rows (an ensemble ranks each column over
  every architecture), from the raw values read back from the chunks. Values are written with
  Python's shortest round-trip repr, so they read back bit for bit: scores.csv is byte-identical
  to an uninterrupted run's and to the non-streaming `--out FILE.csv` of the same settings.
  scores.csv and report.html are written atomically too, so a kill while finishing is undone by
  `--resume`.

Memory: the rating loop holds at most 2 x workers chunks of architectures and one network per
process; sampled spaces are drawn lazily (`iter_sample`). Finishing holds the signal columns
(8 bytes per value) and streams the architecture strings from the chunks into scores.csv.
"""

from __future__ import annotations

import csv
import io
import itertools
from contextlib import ExitStack
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from ssnas.atomic import write_atomic
from ssnas.errors import UserError
from ssnas.ranking.selection import write_score_rows
from ssnas.rating.shared import (
    ChunkProgress,
    SharedStudy,
    iter_chunk_texts,
    open_rating,
    work_on_chunks,
)
from ssnas.rating.aggregate import Ranker
from ssnas.rating.engine import (
    Columns,
    RatingJob,
    count_nonfinite,
    pass_columns,
    rate_chunks,
)
from ssnas.runfolder import CONFIG_NAME, check_run_folder, exclusive, write_config
from ssnas.spaces import Architecture
from ssnas.studies import Liveness, worker_label

CHUNK_FOLDER = "ratings"
SCORES_FILE = "scores.csv"
DEFAULT_CHUNK_SIZE = 128
SECONDS = "seconds"
# settings that may differ on --resume: they change neither which architectures nor their values
RESUMABLE = ("workers", "data", "table", "metric")


@dataclass
class FolderRating:
    """What `rate_into_folder` left in `out`: `count` architectures (`rated` of them by this call),
    `scores` combined over all, in selection order."""

    out: Path
    count: int
    rated: int
    scores: list[float]
    nonfinite: dict[str, int]
    seconds_per_arch: float
    best: tuple[str, float]

    def keys(self) -> Iterator[str]:
        """The architecture strings in selection order, read from the chunks."""
        return iter_keys(self.out)


def iter_keys(out: Path) -> Iterator[str]:
    """The architecture strings of the run folder `out` in selection order, read from its chunks."""
    for path in chunk_paths(out):
        yield from read_chunk(path)[0]


def chunk_path(out: Path, index: int) -> Path:
    return out / CHUNK_FOLDER / f"chunk-{index:05d}.csv"


def chunk_paths(out: Path) -> list[Path]:
    """The chunk files of `out` in index order."""
    return sorted((out / CHUNK_FOLDER).glob("chunk-*.csv"))


def rate_into_folder(
    out: Path, settings: dict[str, Any], archs: Callable[[], Iterable[Architecture]], count: int, job: RatingJob,
    ranker: Ranker, *, chunk_size: int, workers: int = 1, resume: bool = False,
    progress: Callable[[int, int], None] | None = None, shared: SharedStudy | None = None,
) -> FolderRating:
    """Rate the `count` architectures `archs()` yields into `out` (see the module docstring) and
    write scores.csv. `archs()` must yield the same sequence every time it is called with the same
    `settings`; `--resume` (`resume`) rates only the chunks `out` lacks. With `shared`, the chunks
    are taken from (and rated for) a study that other workers share (`ssnas.rating.shared`)."""
    if chunk_size < 1:
        raise UserError(f"--chunk-size must be >= 1, got {chunk_size}")
    with ExitStack() as held:  # one process rates into a folder at a time (several share one with --storage)
        existed = out.is_dir()  # locked before it is checked; a new folder once it is made
        if existed:
            held.enter_context(exclusive(out, _SHARE_INSTEAD))

        def lock_new_folder() -> None:
            if not existed:
                held.enter_context(exclusive(out, _SHARE_INSTEAD))

        return _rate_into_folder(out, settings, archs, count, job, ranker, chunk_size, workers, resume, progress,
                                 shared, lock_new_folder)  # fmt: skip


_SHARE_INSTEAD = "share one rating among processes with --storage (ssnas worker)"


def _rate_into_folder(
    out: Path, settings: dict[str, Any], archs: Callable[[], Iterable[Architecture]], count: int, job: RatingJob,
    ranker: Ranker, chunk_size: int, workers: int, resume: bool, progress: Callable[[int, int], None] | None,
    shared: SharedStudy | None, lock: Callable[[], None],
) -> FolderRating:
    settings = {k: v for k, v in settings.items() if v is not None}
    check_run_folder(out, settings, resume, RESUMABLE)
    if not resume:  # rate the first architecture before writing anything: a ranker that cannot rate this
        first = next(iter(archs()), None)  # space fails here, not in a folder that then needs --resume
        if first is None:
            raise UserError("no architectures to rank")
        job.rate([first])
    expected = -(-count // chunk_size)
    opened = open_rating(shared, settings, expected) if shared is not None else None  # refusals before any write
    write_config(out, settings)
    lock()
    folder = out / CHUNK_FOLDER
    folder.mkdir(exist_ok=True)
    for leftover in folder.glob(".chunk-*.tmp"):  # a kill while a chunk was being written
        leftover.unlink(missing_ok=True)
    header = header_of(job)
    done = {int(p.stem.split("-")[1]) for p in chunk_paths(out)}
    if done - set(range(expected)):
        raise UserError(f"{folder} holds chunks beyond the {expected} of this rating; choose another --out")
    already = sum(min(chunk_size, count - i * chunk_size) for i in done)
    rated = 0

    if shared is not None and opened is not None:  # chunks are taken from a study that any number of workers share
        rated = _rate_shared(out, shared, opened, ChunkRater(archs, chunk_size, job, count), progress)
        for index, chunk in enumerate(_batched(archs(), chunk_size)):
            _check_chunk(chunk_path(out, index), header, [a.key for a in chunk])
        return finish(out, ranker, job.leaves, rated)

    def missing() -> Iterator[tuple[int, list[Architecture]]]:
        chunks = _batched(archs(), chunk_size)
        for index, chunk in enumerate(chunks):
            if index in done:
                _check_chunk(chunk_path(out, index), header, [a.key for a in chunk])
            else:
                yield index, chunk

    for index, chunk, columns, seconds in rate_chunks(job, missing(), workers):
        write_atomic(chunk_path(out, index), chunk_text(header, chunk, columns, seconds, job.leaves))
        rated += len(chunk)
        if progress is not None:
            progress(already + rated, count)
    if len(chunk_paths(out)) != expected:
        raise UserError(f"{folder} has {len(chunk_paths(out))} chunks, expected {expected}: the selection changed")
    return finish(out, ranker, job.leaves, rated)


def _rate_shared(out: Path, shared: SharedStudy, opened: tuple[optuna.Study, Liveness], rater: ChunkRater,
                 progress: Callable[[int, int], None] | None) -> int:  # fmt: skip
    """Work on the shared study until every chunk is rated, then write the chunks `out` lacks from
    the study; returns the architectures this process rated."""
    study, liveness = opened

    def report(state: ChunkProgress) -> None:
        if progress is not None:
            progress(sum(rater.size(k) for k in state.texts), rater.count)

    rated_chunks = work_on_chunks(study, liveness, rater, shared, worker_label(), report)
    for index, text in iter_chunk_texts(study, rater.chunks):
        if not chunk_path(out, index).exists():
            write_atomic(chunk_path(out, index), text)
    return sum(rater.size(k) for k in rated_chunks)


class ChunkRater:
    """Rates chunk k of a selection (`__call__(k)` -> the chunk file's text), for the workers of a
    shared rating. Chunks mostly come in rising order: the selection is read on from where the last
    chunk ended, and started again only for an earlier chunk."""

    def __init__(self, archs: Callable[[], Iterable[Architecture]], chunk_size: int, job: RatingJob,
                 count: int) -> None:  # fmt: skip
        self.archs, self.chunk_size, self.job, self.count = archs, chunk_size, job, count
        self.chunks = -(-count // chunk_size)
        self.header = header_of(job)
        self._position = 0
        self._iterator: Iterator[Architecture] | None = None

    def size(self, k: int) -> int:
        """How many architectures chunk k holds."""
        return min(self.chunk_size, self.count - k * self.chunk_size)

    def __call__(self, k: int) -> str:
        if not 0 <= k < self.chunks:
            raise UserError(f"chunk {k} is not one of the {self.chunks} of this rating")
        start = k * self.chunk_size
        if self._iterator is None or start < self._position:
            self._iterator, self._position = iter(self.archs()), 0
        for _ in itertools.islice(self._iterator, start - self._position):
            pass
        chunk = list(itertools.islice(self._iterator, self.chunk_size))
        self._position = start + len(chunk)
        columns, seconds = self.job.rate(chunk)
        return chunk_text(self.header, chunk, columns, seconds, self.job.leaves)


def header_of(job: RatingJob) -> list[str]:
    """A chunk file's header: arch, each leaf signal, seconds."""
    return ["arch", *job.leaves, SECONDS]


def finish(out: Path, ranker: Ranker, leaves: Iterable[str], rated: int = 0) -> FolderRating:
    """Combine every chunk of `out` into one score per architecture and write scores.csv atomically."""
    leaves = list(leaves)
    columns: Columns = {name: [] for name in leaves}
    seconds: list[float] = []
    for path in chunk_paths(out):
        _, part, spent = read_chunk(path)
        for name in leaves:
            columns[name].extend(part[name])
        seconds.extend(spent)
    if not seconds:
        raise UserError(f"{out} holds no rated architectures")
    scores = ranker.combine(columns)
    best = max(range(len(scores)), key=lambda i: scores[i])
    best_key: list[str] = []

    def rows() -> Iterator[list[object]]:
        i = 0
        for path in chunk_paths(out):
            for key in read_chunk(path)[0]:
                if i == best:
                    best_key.append(key)
                yield [key, scores[i], *(columns[name][i] for name in leaves)]
                i += 1

    write_score_rows(out / SCORES_FILE, leaves, rows())
    return FolderRating(out, len(scores), rated, scores, count_nonfinite(columns), sum(seconds) / len(seconds),
                        (best_key[0], scores[best]))  # fmt: skip


def read_chunk(path: Path) -> tuple[list[str], Columns, list[float]]:
    """(arch strings, leaf columns, seconds per architecture) of one chunk file."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    names = header[1:-1]
    columns = {name: [float(row[1 + j]) for row in rows] for j, name in enumerate(names)}
    return [row[0] for row in rows], columns, [float(row[-1]) for row in rows]


def chunk_text(header: list[str], archs: list[Architecture], columns: Columns, seconds: Columns,
                leaves: Iterable[str]) -> str:  # fmt: skip
    """The chunk file: one row per architecture, values as their round-trip repr."""
    leaves = list(leaves)
    passes = pass_columns(leaves)
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for i, arch in enumerate(archs):
        writer.writerow([arch.key, *(repr(columns[name][i]) for name in leaves), repr(sum(seconds[n][i] for n in passes))])
    return text.getvalue()


def _check_chunk(path: Path, header: list[str], keys: list[str]) -> None:
    """UserError unless the chunk file holds exactly `keys` with the columns of `header`."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        found = next(reader, [])
        stored = [row[0] for row in reader]
    if found != header or stored != keys:
        what = "signals" if found != header else "architectures"
        raise UserError(f"{path} holds other {what} than this rating's chunk; resume with the settings in "
                        f"{path.parent.parent / CONFIG_NAME} or choose another --out")  # fmt: skip


def _batched(items: Iterable[Architecture], size: int) -> Iterator[list[Architecture]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


__all__ = ["CHUNK_FOLDER", "DEFAULT_CHUNK_SIZE", "ChunkRater", "FolderRating", "chunk_path", "chunk_text", "finish",
           "header_of", "iter_keys", "rate_into_folder", "read_chunk"]  # fmt: skip

"""One rating shared by many processes or machines through an Optuna storage.

`ssnas rank --all | --sample N --out DIR --storage URL [--study NAME]` starts (or joins) a rating
study; any number of `ssnas worker --study NAME --storage URL --data IMAGES` processes, on any
machine that reaches the storage, join it. The storages are the ones a TPE search already uses
(`ssnas.studies.open_storage`: a journal file on a shared file system, SQLite, PostgreSQL).

How the work is shared:

* the study's user attribute `ssnas:rating` holds the rating's settings (space, ranker, network,
  selection, seed, chunk size, the SHA-256 of the images every network is rated on). It is set
  after one WAITING trial per chunk has been enqueued (parameter `chunk` = k), so a study with
  the attribute is ready to work on;
* a worker `ask`s: the storage hands each WAITING trial to exactly one worker. It rates chunk k
  (the architectures [k S, (k + 1) S) of the selection, which every process regenerates from
  the settings, as `ssnas.rating.stream` does for --resume) and stores the chunk file's text
  in the trial's user attribute `ssnas:chunk`, then tells the trial COMPLETE;
* the loop is `ssnas.studies.work`, the one a TPE search's workers run too: while a chunk is
  rated its worker beats a heartbeat (`ssnas.studies.Heartbeat`). A worker that
  dies (SIGKILL, lost machine) stops beating; after the grace period any other worker fails its
  trial and re-queues the chunk (Optuna's `RetryHeartbeatStaleTrialCallback`; ssnas's own rule on
  the journal file), so a killed worker's chunk is taken again;
* a chunk that has neither a COMPLETE, RUNNING nor WAITING trial (its re-queue was itself cut
  off by a kill) is enqueued again once nothing else is left to do;
* the command that started the rating waits for every chunk, writes the chunk texts into
  DIR/ratings/chunk-NNNNN.csv and finishes exactly as a one-process rating
  (`ssnas.rating.stream.finish`): the merged scores.csv is byte-identical to one process's.
  A chunk completed twice (two re-queues raced) is written once; both texts must agree.

Rating values depend on the device (CPU or GPU kernels differ), so the settings fix it: every
worker rates on the device the rating was started with.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, Trial, TrialState

from ssnas.errors import UserError
from ssnas.faults import fault_point
from ssnas.studies import (
    STUDY_ATTR,
    Liveness,
    Step,
    StudyConfig,
    frozen_trial,
    masked_url,
    open_storage,
    study_id,
    work,
)

log = logging.getLogger(__name__)

RATING_ATTR = "ssnas:rating"  # study user attribute: the shared rating's settings
CHUNK_ATTR = "ssnas:chunk"  # trial user attribute: the chunk file's text
CHUNK_PARAM = "chunk"
WORKER_ATTR = "ssnas:worker"
DEFAULT_STUDY = "ssnas-rating"
DEFAULT_HEARTBEAT = 20  # s; a killed worker's chunk is taken again after 2 x this
READY_WAIT = 60.0  # s a joining process waits for the study that another one is still enqueueing
# settings a process joining the rating may have differently (they do not change the values)
LOCAL_SETTINGS = ("workers", "data", "table", "metric", "storage", "study")

RateChunk = Callable[[int], str]
"""Rate chunk k of the selection and return its chunk file's text."""


@dataclass(frozen=True)
class SharedStudy:
    """Where a shared rating lives. `storage` is the real URL (kept in memory, never written:
    `shown` is what run folders and messages get)."""

    storage: str
    name: str = DEFAULT_STUDY
    heartbeat_interval: int = DEFAULT_HEARTBEAT
    poll_interval: float = 2.0

    @property
    def shown(self) -> str:
        return masked_url(self.storage)

    def study_config(self) -> StudyConfig:
        # a chunk may be killed any number of times: it is re-queued every time
        return StudyConfig(storage=self.storage, study_name=self.name, heartbeat_interval=self.heartbeat_interval,
                           max_retry=1_000_000, poll_interval=self.poll_interval,
                           max_consecutive_failures=1_000_000)  # fmt: skip


@dataclass
class ChunkProgress:
    """What the study holds: chunks COMPLETE (with their text), and how many trials in each state."""

    chunks: int
    texts: dict[int, str] = field(default_factory=dict)
    duplicates: int = 0
    running: int = 0
    waiting: int = 0
    queued: set[int] = field(default_factory=set)  # chunks with a RUNNING or WAITING trial

    @property
    def missing(self) -> list[int]:
        """Chunks nobody has, is, or will be rating."""
        return [k for k in range(self.chunks) if k not in self.texts and k not in self.queued]


def shared_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The part of a rating's settings every process of a shared rating must agree on."""
    return {k: v for k, v in settings.items() if k not in LOCAL_SETTINGS and v is not None}


def open_rating(shared: SharedStudy, settings: dict[str, Any], chunks: int) -> tuple[optuna.Study, Liveness]:
    """Create the rating study in `shared.storage` (one WAITING trial per chunk, then the settings),
    or join the existing one; UserError when it is a search's study or rates other settings."""
    storage, liveness = open_storage(shared.storage, shared.study_config())
    wanted = {**shared_settings(settings), "chunks": chunks, "heartbeat_interval": shared.heartbeat_interval}
    sampler = optuna.samplers.RandomSampler(seed=0)  # never samples: every trial is an enqueued chunk
    try:
        study = optuna.create_study(storage=storage, study_name=shared.name, direction="maximize", sampler=sampler)
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=shared.name, storage=storage, sampler=sampler)
        _check_same(study, shared, wanted)
        return study, liveness
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enqueue_trial is experimental in some Optuna versions
        for k in range(chunks):
            study.enqueue_trial({CHUNK_PARAM: k})
    study.set_user_attr(RATING_ATTR, wanted)  # last: a study with settings is ready to work on
    return study, liveness


def join_rating(shared: SharedStudy) -> tuple[optuna.Study, Liveness, dict[str, Any]]:
    """Open the existing rating study (a worker): (study, liveness, its settings)."""
    storage, liveness = open_storage(shared.storage, shared.study_config())
    study_id(storage, shared.name, shared.storage)  # UserError naming the storage when there is none
    study = optuna.load_study(study_name=shared.name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    return study, liveness, _settings_of(study, shared)


def study_kind(storage_url: str, study_name: str) -> str:
    """"rating" for a shared rating's study, "search" for a TPE / random search's (the worker
    command serves both); UserError when the storage holds no such study."""
    storage, _ = open_storage(storage_url, StudyConfig())
    attrs = storage.get_study_user_attrs(study_id(storage, study_name, storage_url))
    return "rating" if RATING_ATTR in attrs else "search"


def work_on_chunks(study: optuna.Study, liveness: Liveness, rate: RateChunk, shared: SharedStudy,
                   label: str, on_progress: Callable[[ChunkProgress], None] | None = None) -> list[int]:  # fmt: skip
    """Take chunks and rate them until every chunk of the study is COMPLETE; returns the chunks this
    process rated. Fails other workers' stale trials (re-queueing their chunks) on the way."""
    chunks = _ChunkQueue(study, rate, shared, label, on_progress)
    work(study, liveness, chunks, shared.study_config())
    return chunks.rated


class _ChunkQueue:
    """The chunks of a shared rating as `ssnas.studies.work` takes them: one trial per chunk."""

    def __init__(self, study: optuna.Study, rate: RateChunk, shared: SharedStudy, label: str,
                 on_progress: Callable[[ChunkProgress], None] | None) -> None:  # fmt: skip
        self.rate, self.label, self.on_progress = rate, label, on_progress
        self.chunks = int(_settings_of(study, shared)["chunks"])
        self.state = ChunkProgress(self.chunks)
        self.taken = 0  # the chunk of the trial being run
        self.rated: list[int] = []

    def next_step(self, study: optuna.Study) -> Step:
        self.state = state = chunk_progress(study, self.chunks)
        if self.on_progress is not None:
            self.on_progress(state)
        if len(state.texts) == state.chunks:
            return "done"
        if state.waiting > 0:
            return "ask"
        if state.running == 0 and state.missing:  # a re-queue cut off by a kill
            for k in state.missing:
                log.warning("chunk %d had no trial left; queued again", k)
                study.enqueue_trial({CHUNK_PARAM: k})
            return "again"
        return "wait"  # the rest is being rated by other workers

    def surplus(self, study: optuna.Study, trial: Trial) -> str | None:
        chunk = _chunk_of(frozen_trial(study, trial.number))  # enqueued, or a re-queued copy
        if chunk is None:  # lost the last waiting chunk to another worker
            return "surplus: no chunk left to take"
        if chunk in self.state.texts:
            return f"surplus: chunk {chunk} is already rated"
        self.taken = chunk
        return None

    def run(self, study: optuna.Study, trial: Trial) -> bool:
        trial.suggest_int(CHUNK_PARAM, 0, self.chunks - 1)  # a parameter, so a re-queued copy keeps it
        trial.set_user_attr(WORKER_ATTR, self.label)
        text = self.rate(self.taken)
        fault_point("chunk")
        trial.set_user_attr(CHUNK_ATTR, text)
        study.tell(trial, float(text.count("\n") - 1))
        self.rated.append(self.taken)
        return True


def chunk_progress(study: optuna.Study, chunks: int) -> ChunkProgress:
    """The chunks the study holds, from its trials."""
    state = ChunkProgress(chunks)
    for trial in study.get_trials(deepcopy=False):
        chunk = _chunk_of(trial)
        if chunk is None:
            continue
        if trial.state == TrialState.COMPLETE and CHUNK_ATTR in trial.user_attrs:
            text = str(trial.user_attrs[CHUNK_ATTR])
            if chunk in state.texts:
                state.duplicates += 1
                if state.texts[chunk] != text:
                    raise UserError(f"chunk {chunk} was rated twice with different values: the workers differ "
                                    "(ssnas or torch version, CPU/GPU kernels); rate again in a new study")  # fmt: skip
                continue
            state.texts[chunk] = text
        elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
            state.queued.add(chunk)
            state.running += trial.state == TrialState.RUNNING
            state.waiting += trial.state == TrialState.WAITING
    return state


def iter_chunk_texts(study: optuna.Study, chunks: int) -> Iterator[tuple[int, str]]:
    """(k, text) of every chunk in order; UserError when one is not rated yet."""
    texts = chunk_progress(study, chunks).texts
    for k in range(chunks):
        if k not in texts:
            raise UserError(f"chunk {k} of study {study.study_name!r} is not rated")
        yield k, texts[k]


def _chunk_of(trial: FrozenTrial) -> int | None:
    value = trial.params.get(CHUNK_PARAM, trial.system_attrs.get("fixed_params", {}).get(CHUNK_PARAM))
    return None if value is None else int(value)


def _settings_of(study: optuna.Study, shared: SharedStudy) -> dict[str, Any]:
    """The study's rating settings; waits a little for a study still being enqueued."""
    waited = 0.0
    while True:
        attrs = study.user_attrs
        if RATING_ATTR in attrs:
            return dict(attrs[RATING_ATTR])
        if STUDY_ATTR in attrs:
            raise UserError(f"study {shared.name!r} in {shared.shown} is a search's study, not a shared rating; "
                            "give another --study")  # fmt: skip
        if waited >= READY_WAIT:
            raise UserError(f"study {shared.name!r} in {shared.shown} holds no rating settings (its start was cut "
                            "off, or it is not ssnas's); give another --study")  # fmt: skip
        time.sleep(1.0)
        waited += 1.0


def _check_same(study: optuna.Study, shared: SharedStudy, wanted: dict[str, Any]) -> None:
    stored = _settings_of(study, shared)
    changed = sorted(k for k in {*stored, *wanted} if k != "heartbeat_interval" and stored.get(k) != wanted.get(k))
    if changed:
        details = ", ".join(f"{k} ({stored.get(k)!r} -> {wanted.get(k)!r})" for k in changed)
        raise UserError(f"study {shared.name!r} in {shared.shown} rates other settings: {details}; give the same "
                        "settings to join it, or another --study")  # fmt: skip


__all__ = ["CHUNK_ATTR", "DEFAULT_HEARTBEAT", "DEFAULT_STUDY", "RATING_ATTR", "ChunkProgress", "SharedStudy",
           "chunk_progress", "iter_chunk_texts", "join_rating", "open_rating", "shared_settings", "study_kind",
           "work_on_chunks"]  # fmt: skip

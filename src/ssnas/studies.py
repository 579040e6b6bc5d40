"""Optuna studies: storages, heartbeats, the worker loop and what a study holds at the end.

Apart from the samplers (as Optuna keeps its samplers apart from its storages): a strategy
(`ssnas.strategies.tpe`) chooses the sampler and evaluates one trial; this module keeps the
trials where any number of workers share them and decides when a trial is started, lost,
re-queued or surplus. It knows nothing of spaces or networks.

Storage, parallel workers and resumption
----------------------------------------

`StudyConfig.storage` is a journal file path (default `<out_dir>/study.journal`), an
SQLite URL (`sqlite:///runs/x/study.db`) or a PostgreSQL URL
(`postgresql://user@host:5432/db`, needs `pip install psycopg2-binary`). Any number
of processes, on any machines that reach the storage, can join one study
(`ssnas worker --study NAME --storage URL`, `ssnas.strategies.tpe.run_worker`).

* `n_trials` is the total number of COMPLETE trials wanted across all workers.
  Failed trials do not count (CSNAS re-ran failures until 120 succeeded). Exactly
  `n_trials` complete: a worker starts a trial only when the completed trials plus
  those running or queued with a lower trial number leave room (trial numbers are
  assigned atomically by the storage). A trial that loses that race is closed at
  once as FAIL with user attribute `ssnas:surplus`.
* A trial that fails is closed as FAIL with its reason in the user attribute
  `ssnas:fail_reason`; the search goes on. `max_consecutive_failures` failures in a
  row on one worker stop it.
* Workers send a heartbeat while a trial runs. A trial whose worker died (SIGKILL,
  lost machine) stops beating; after `grace_period` s any worker marks it FAIL and
  re-queues its parameters as a WAITING trial (up to `max_retry` times), which the
  next `ask` picks up. RDB storages use Optuna's own heartbeat
  (`heartbeat_interval`, `grace_period`, `RetryHeartbeatStaleTrialCallback`, the
  successor of `RetryFailedTrialCallback`); the journal file has no heartbeat in
  Optuna, so the worker writes the time into the system attribute `ssnas:heartbeat`
  and cleans up stale trials itself the same way. Heartbeats use each worker's
  clock: keep the machines' clocks in sync (NTP).
* Resume: open the same study again; every completed trial stays, a trial left
  RUNNING is failed and re-queued once its heartbeat is stale.

Watch a study live with optuna-dashboard (`pip install optuna-dashboard`)::

    optuna-dashboard sqlite:///runs/x/study.db
    optuna-dashboard postgresql+psycopg2://user@host:5432/db   # name the driver (SQLAlchemy 2.1)
    optuna-dashboard runs/x/study.journal    # any existing file is opened as a journal

A bare `postgresql://` URL is given to SQLAlchemy as `postgresql+psycopg2://` when psycopg2
is installed (SQLAlchemy 2.1 would otherwise ask for psycopg 3).

Passwords: a URL is written and shown only as `masked_url` gives it (`user:***@`), so run folders,
logs and messages hold no password; the real URL lives in memory for the run. Better still, keep
the password out of the URL: libpq reads `PGPASSWORD` or `~/.pgpass`.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import re
import socket
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy.exc import SAWarning

from ssnas.errors import UserError
from ssnas.paths import expand_user

log = logging.getLogger(__name__)

DEFAULT_JOURNAL = "study.journal"
STUDY_ATTR = "ssnas"  # study user attribute holding the search settings
HEARTBEAT_ATTR = "ssnas:heartbeat"
FAIL_REASON_ATTR = "ssnas:fail_reason"
SURPLUS_ATTR = "ssnas:surplus"
DUPLICATE_ATTR = "ssnas:duplicate_of"
OVER_BUDGET_ATTR = "ssnas:over_budget"

# Seconds a PostgreSQL connection may take before the storage is refused (libpq's connect_timeout;
# a `connect_timeout=` in the URL wins).
PG_CONNECT_TIMEOUT = 15

# Seconds after which a journal lock nobody refreshes (its holder was killed) is broken.
JOURNAL_LOCK_GRACE = 30


@dataclass(frozen=True)
class StudyConfig:
    """Where trials live and how workers share them (plain values, TOML-friendly).

    storage: journal file path, `sqlite:///...` or `postgresql://...`; None = `<out_dir>/study.journal`
        (in memory when the task has no out_dir).
    n_trials: COMPLETE trials wanted in total, over all workers.
    timeout: stop starting trials after this many seconds (None = no limit).
    heartbeat_interval / grace_period: seconds; a running trial without a heartbeat for
        `grace_period` (default 2 x interval) is failed and re-queued, at most `max_retry` times.
    poll_interval: seconds a worker waits while the remaining budget is held by other workers.
    """

    n_trials: int = 120
    storage: str | None = None
    study_name: str = "ssnas"
    timeout: float | None = None
    heartbeat_interval: int = 60
    grace_period: int | None = None
    max_retry: int = 3
    poll_interval: float = 5.0
    max_consecutive_failures: int = 10

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise UserError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.heartbeat_interval < 1:
            raise UserError(f"heartbeat_interval must be >= 1 s, got {self.heartbeat_interval}")

    @property
    def grace(self) -> int:
        return self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval


# --- storage and liveness ---------------------------------------------------------------------------


def storage_location(storage: str | None, out_dir: Path | None) -> str | None:
    """The storage a search uses: the given one, else `<out_dir>/study.journal`, else None (memory)."""
    if storage is not None:
        return storage
    return None if out_dir is None else str(Path(out_dir) / DEFAULT_JOURNAL)


def is_url(location: str) -> bool:
    """True for an RDB storage URL (SQLite, PostgreSQL); False for a journal file path."""
    return "://" in location


class Liveness:
    """No heartbeat (in-memory storage: one process, nothing can be left behind)."""

    def beat(self, study: optuna.Study, number: int) -> None:
        """Record that trial `number` of `study` is alive."""

    def fail_stale(self, study: optuna.Study) -> None:
        pass


class _JournalLiveness(Liveness):
    """The same contract for the journal file, which has no heartbeat in Optuna: the time of the
    last beat is a trial system attribute, and a trial that never beat counts from its start."""

    def __init__(self, storage: BaseStorage, grace: int, max_retry: int) -> None:
        self.storage, self.grace, self.max_retry = storage, grace, max_retry

    def trial_id(self, study: optuna.Study, number: int) -> int:
        """The storage's id of trial `number` (through the storage's public methods)."""
        study_id = self.storage.get_study_id_from_name(study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def beat(self, study: optuna.Study, number: int) -> None:
        self.storage.set_trial_system_attr(self.trial_id(study, number), HEARTBEAT_ATTR, time.time())

    def fail_stale(self, study: optuna.Study) -> None:
        now = time.time()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            start = trial.datetime_start.timestamp() if trial.datetime_start else now
            last = float(trial.system_attrs.get(HEARTBEAT_ATTR, start))
            if now - last <= self.grace:
                continue
            trial_id = self.trial_id(study, trial.number)
            try:
                reason = f"no heartbeat for {now - last:.0f} s"
                self.storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, reason)
                if not self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:  # another worker got there first
                continue
            log.warning("trial %d: worker lost (%s); failed and re-queued", trial.number, reason)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                RetryHeartbeatStaleTrialCallback(self.max_retry)(study, self.storage.get_trial(trial_id))


class _RDBLiveness(_JournalLiveness):
    """Optuna's own heartbeat of RDB storages (stale trials failed and re-queued by its callback),
    plus the journal's rule for a trial that never got a heartbeat: Optuna ignores those, so a
    worker killed between `ask` and its first beat would leave a RUNNING trial forever (found by
    benchmarks/bench_soak.py: a study stuck at 199 of 200)."""

    def __init__(self, storage: RDBStorage, grace: int, max_retry: int) -> None:
        super().__init__(storage, grace, max_retry)
        self.rdb = storage

    def beat(self, study: optuna.Study, number: int) -> None:
        self.rdb.record_heartbeat(self.trial_id(study, number))
        super().beat(study, number)

    def fail_stale(self, study: optuna.Study) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        super().fail_stale(study)


def _with_postgres_driver(url: str) -> str:
    """A bare `postgresql://` URL with the driver that is installed: SQLAlchemy 2.1 takes it as
    psycopg 3, 2.0 as psycopg2; ssnas depends on psycopg2-binary. Other URLs are returned as given."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}{sep}{rest}"
    raise UserError(f"storage {masked_url(url)} needs a PostgreSQL driver: pip install psycopg2-binary")


# Secrets of a storage URL: the login's password (parsed as SQLAlchemy does: up to the first "@")
# and a password in the query string (`?password=...`, as libpq takes it).
MASK = "***"
_LOGIN_PASSWORD = re.compile(r"^(?P<head>[\w+]+://[^:/]*:)(?P<secret>[^@]*)(?=@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<secret>[^&#]*)", re.IGNORECASE)
_LOGIN_IN_TEXT = re.compile(r"(?P<head>[\w+]+://[^:/\s]*:)(?P<secret>[^@\s]*)(?=@)")
_SHORTEST_MASKED = 4  # masked_text: shorter passwords are masked inside URLs only


def masked_url(location: str) -> str:
    """The storage as it may be written or shown: `postgresql://user:***@host/db`, any
    `password=` query value masked too; journal paths and URLs without a password as given.

    The one form of a storage URL in run folders, logs and messages (config.yaml, search.log,
    result.json, report.html, worker output); the real URL stays in memory for the run.
    """
    if not is_url(location):
        return location
    masked = _LOGIN_PASSWORD.sub(lambda m: m["head"] + MASK, location, count=1)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + MASK, masked)


def url_secrets(location: str) -> list[str]:
    """The passwords a storage URL holds (login and query string), as written; [] for none."""
    if not is_url(location):
        return []
    found = [_LOGIN_PASSWORD.match(location), *_QUERY_PASSWORD.finditer(location)]
    return [m["secret"] for m in found if m is not None and m["secret"] != ""]


def masked_text(text: str, location: str | None) -> str:
    """`text` (an error message) without the secrets of `location`: every URL login in it masked
    (whatever the driver prefix), query passwords masked, then any other occurrence of a password
    (as written or percent-decoded) of 4 characters or more."""
    if location is None or not is_url(location):
        return text
    text = _LOGIN_IN_TEXT.sub(lambda m: m["head"] + MASK, text)
    text = _QUERY_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    forms = {form for secret in url_secrets(location) if secret != MASK for form in (secret, unquote(secret))}
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= _SHORTEST_MASKED:
            text = text.replace(form, MASK)
    return text


def open_storage(location: str | None, config: StudyConfig) -> tuple[BaseStorage, Liveness]:
    """Open a journal file, SQLite or PostgreSQL storage (or memory for None), with its heartbeat."""
    if location is None:
        return optuna.storages.InMemoryStorage(), Liveness()
    if is_url(location):
        if MASK in url_secrets(location):
            raise UserError(f"storage {location} has its password masked, as run folders record it; give "
                            "--storage with the password, or leave it out of the URL and set PGPASSWORD")  # fmt: skip
        url = _with_postgres_driver(location)
        engine_kwargs = {"connect_args": {"timeout": 60}} if location.startswith("sqlite") else None
        if url.startswith("postgresql+") and "connect_timeout=" not in url:  # a host that never answers: fail, not hang
            engine_kwargs = {"connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            warnings.simplefilter("error", SAWarning)  # e.g. URL arguments the driver would ignore: refused in one line
            try:
                storage = RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=config.heartbeat_interval,
                    grace_period=config.grace,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(config.max_retry),
                )
            except Exception as error:  # SQLAlchemy: bad URL, unreachable server, wrong password
                message = masked_text(f"cannot open storage {masked_url(location)}: {error}", location)
                raise UserError(message.splitlines()[0]) from error
        return storage, _RDBLiveness(storage, config.grace, config.max_retry)
    # Absolute: the lock is a symlink to the journal, and Optuna breaks a lock left by a killed
    # holder by stat-ing through it; a relative target dangles, and the study would hang forever.
    path = expand_user(location).resolve()
    if path.is_dir():
        raise UserError(f"storage {path} is a folder; give a journal file path such as {path / DEFAULT_JOURNAL}")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileSymlinkLock(str(path), grace_period=JOURNAL_LOCK_GRACE)
    try:
        journal = JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    except Exception as error:  # noqa: BLE001 - Optuna replays the file here: no journal fails anywhere
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"storage {path} is not an Optuna journal or is corrupt ({reason}); give the "
                        "journal of the running search, or a new file for a new study") from None  # fmt: skip
    return journal, _JournalLiveness(journal, config.grace, config.max_retry)


def existing_trials(storage: BaseStorage, study_name: str) -> int:
    """How many trials (any state) the study `study_name` holds; 0 when there is no such study."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def study_id(storage: BaseStorage, study_name: str, storage_url: str) -> int:
    """The id of an existing study (UserError naming the storage when there is none)."""
    try:
        return storage.get_study_id_from_name(study_name)
    except KeyError:
        where = masked_url(storage_url)
        raise UserError(f"no study {study_name!r} in {where}; start it with `ssnas search` first") from None


def check_study(study_name: str, storage_url: str) -> None:
    """UserError unless `storage_url` opens and holds `study_name` (a worker checks this before
    it writes anything; a journal path that does not exist is refused, not created)."""
    if not is_url(storage_url) and not expand_user(storage_url).is_file():
        raise UserError(f"no study journal at {storage_url}; give the --storage of the running search")
    storage, _ = open_storage(storage_url, StudyConfig())
    try:
        study_id(storage, study_name, storage_url)
    finally:
        if isinstance(storage, RDBStorage):
            storage.remove_session()
            storage.engine.dispose()


class Heartbeat:
    """Calls `beat()` now and then every `interval` s in a daemon thread, until the block ends."""

    def __init__(self, beat: Callable[[], None], interval: float) -> None:
        self.beat, self.interval = beat, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a missed beat is retried; the trial itself must not die of it
                log.debug("heartbeat failed", exc_info=True)

    def __enter__(self) -> Heartbeat:
        self.beat()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# --- the worker loop --------------------------------------------------------------------------------


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_seed(seed: int, existing: int, label: str | None) -> int:
    """A fresh search with no trials uses `seed` itself; a resumed search or an extra worker
    gets a different stream (otherwise it would repeat the start-up trials already run)."""
    if existing == 0 and label is None:
        return seed
    entropy = [seed, existing] + ([zlib.crc32(label.encode())] if label else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _count(trials: Sequence[FrozenTrial], *states: TrialState) -> int:
    return sum(t.state in states for t in trials)


def close_failed(study: optuna.Study, trial: Trial, reason: str) -> None:
    """Tell `trial` as FAIL with `reason` (cut to 2000 characters) in `ssnas:fail_reason`."""
    trial.set_user_attr(FAIL_REASON_ATTR, reason[:2000])
    study.tell(trial, state=TrialState.FAIL)


def frozen_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial `number` of `study` as the storage holds it now."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


Step = Literal["done", "wait", "again", "ask"]
"""What a worker does next: stop, wait for the other workers, look at the study again, ask a trial."""


class Queue(Protocol):
    """What a worker takes trials for: a search's budget of trials (`TrialBudget`) or a shared
    rating's chunks (`ssnas.rating.shared`). `work` owns the loop; a queue only decides."""

    def next_step(self, study: optuna.Study) -> Step:
        """What to do now, from the study's trials (stale trials of dead workers already failed)."""
        ...

    def surplus(self, study: optuna.Study, trial: Trial) -> str | None:
        """Why the trial just asked is not to be run (closed as FAIL at once), or None to run it."""
        ...

    def run(self, study: optuna.Study, trial: Trial) -> bool:
        """Run the trial and tell its result; False when it failed (closed as FAIL)."""
        ...


RunTrial = Callable[[optuna.Study, Trial], bool]
"""Evaluate one asked trial and tell its result; False when it failed (closed as FAIL)."""


class TrialBudget:
    """A search's queue: `n_trials` COMPLETE trials over all workers, no new trial after `timeout` s."""

    def __init__(self, run_trial: RunTrial, config: StudyConfig) -> None:
        self.run_trial, self.n_trials, self.timeout = run_trial, config.n_trials, config.timeout
        self.started = time.monotonic()

    def next_step(self, study: optuna.Study) -> Step:
        trials = study.get_trials(deepcopy=False)
        complete = _count(trials, TrialState.COMPLETE)
        if complete >= self.n_trials:
            return "done"
        if self.timeout is not None and time.monotonic() - self.started > self.timeout:
            log.info("timeout of %.0f s reached with %d complete trials", self.timeout, complete)
            return "done"
        if complete + _count(trials, TrialState.RUNNING) >= self.n_trials:
            return "wait"  # the rest of the budget is running on other workers
        return "ask"

    def surplus(self, study: optuna.Study, trial: Trial) -> str | None:
        """A reason when COMPLETE trials plus running/queued trials numbered below `trial` fill the budget.

        Storages number trials atomically, so of any set of trials that all complete, the
        highest-numbered one saw all the others here: never more than `n_trials` complete.
        """
        trials = study.get_trials(deepcopy=False)
        complete = _count(trials, TrialState.COMPLETE)
        ahead = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < trial.number for t in trials)
        return "surplus: another worker took the last slot of the budget" if complete + ahead >= self.n_trials else None

    def run(self, study: optuna.Study, trial: Trial) -> bool:
        return self.run_trial(study, trial)


def work(study: optuna.Study, liveness: Liveness, queue: Queue, config: StudyConfig) -> None:
    """The worker loop: ask, run, tell until `queue` is done, beating the heartbeat while each trial
    runs and failing other workers' stale trials (which re-queues them) on every turn."""
    failures_in_row = 0
    while True:
        liveness.fail_stale(study)
        step = queue.next_step(study)
        if step == "done":
            return
        if step == "wait":
            time.sleep(config.poll_interval)
        if step != "ask":
            continue
        with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize"
            warnings.simplefilter("ignore")
            trial = study.ask()
        reason = queue.surplus(study, trial)
        if reason is not None:
            trial.set_user_attr(SURPLUS_ATTR, True)
            close_failed(study, trial, reason)
            continue
        with Heartbeat(functools.partial(liveness.beat, study, trial.number), config.heartbeat_interval):
            try:
                completed = queue.run(study, trial)
            except UpdateFinishedTrialError:  # declared dead by another worker (heartbeat too late)
                log.warning("trial %d was failed by another worker while it ran; its result is dropped", trial.number)
                completed = False
        failures_in_row = 0 if completed else failures_in_row + 1
        if failures_in_row >= config.max_consecutive_failures:
            reason = frozen_trial(study, trial.number).user_attrs.get(FAIL_REASON_ATTR, "?")
            raise UserError(f"{failures_in_row} trials in a row failed; the last: {reason.splitlines()[0]}")


# --- results ----------------------------------------------------------------------------------------


def study_info(study: optuna.Study, location: str | None) -> dict[str, Any]:
    """What the study holds at the end: trial counts by outcome, failure reasons, trial time,
    the stored settings. UserError when no trial completed (naming why they failed)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    reasons = Counter(
        str(t.user_attrs.get(FAIL_REASON_ATTR, "worker lost (no heartbeat)")).split(":")[0] for t in failed
    )
    if not complete:
        raise UserError(f"no trial of study {study.study_name!r} completed; failures: {dict(reasons) or 'none'}")
    seconds = [t.user_attrs.get("details", {}).get("seconds") for t in complete]
    mean_seconds = float(np.mean([s for s in seconds if s is not None] or [math.nan]))
    return {
        "study_name": study.study_name,
        "storage": masked_url(location) if location else "memory",
        "complete": len(complete),
        "failed": sum(SURPLUS_ATTR not in t.user_attrs for t in failed),
        "surplus": sum(SURPLUS_ATTR in t.user_attrs for t in failed),
        "duplicates": sum(DUPLICATE_ATTR in t.user_attrs for t in complete),
        "over_budget": sum(OVER_BUDGET_ATTR in t.user_attrs for t in trials),
        "fail_reasons": dict(reasons),
        "trial_seconds_mean": mean_seconds,
        "trials_per_hour": 3600.0 / mean_seconds if mean_seconds > 0 else math.nan,  # one worker
        "settings": study.user_attrs.get(STUDY_ATTR, {}),
    }


__all__ = [
    "DEFAULT_JOURNAL",
    "JOURNAL_LOCK_GRACE",
    "STUDY_ATTR",
    "Heartbeat",
    "Liveness",
    "Queue",
    "RunTrial",
    "Step",
    "StudyConfig",
    "TrialBudget",
    "check_study",
    "close_failed",
    "existing_trials",
    "frozen_trial",
    "is_url",
    "masked_text",
    "masked_url",
    "open_storage",
    "storage_location",
    "study_id",
    "study_info",
    "work",
    "worker_label",
    "worker_seed",
]

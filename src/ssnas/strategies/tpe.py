"""Sequential model-based search with Optuna's ask/tell: TPE (CSNAS) and random search.

Nguyen & Chang, "CSNAS" (arXiv 2102.10557), methods.md §1.4: hyperopt's TPE over the
cell encoding, every trial scored by a from-scratch self-supervised proxy
(`ssnas.strategies.proxy`), the best cell = the trial with the lowest loss. Here the
optimiser is Optuna (the only module of ssnas that imports it), configured to
hyperopt's defaults, and the baseline `random` runs the same loop with
`optuna.samplers.RandomSampler`. Both are space-agnostic: every decision of
`space.choices()` is one categorical parameter, and `space.make(...)` builds the
architecture.

Hyperopt defaults (`TPEConfig`), as far as Optuna allows:

* 20 random start-up trials, 24 EI candidates, prior weight 1.0, independent
  (univariate) sampling of each decision, hyperopt's linear-forgetting weights
  (Optuna's `default_weights` is that ramp: flat for the newest 25 trials).
* The "good" set holds min(ceil(0.25 * sqrt(n)), 25) of the n finished trials
  (hyperopt's `gamma` with its `linear_forgetting` cap); Optuna's own default is 10 %.
* Not identical: hyperopt smooths a categorical by adding `prior_weight` to every
  option's count; Optuna mixes one kernel per observation (each smoothed by
  prior_weight / (n + 1)) with a uniform prior kernel. `consider_endpoints` and
  `consider_magic_clip` only affect numerical parameters (none here); they are
  set as hyperopt has them (False / True) for completeness.
* `constant_liar` (Optuna's, on by default) treats trials running on other workers
  as bad observations, so parallel workers spread out; hyperopt's sequential
  `fmin` had no such case.

Storage, parallel workers and resumption
---------------------------------------

`StudyConfig.storage` is a journal file path (default `<out_dir>/study.journal`), an
SQLite URL (`sqlite:///runs/x/study.db`) or a PostgreSQL URL
(`postgresql://user@host:5432/db`, needs `pip install psycopg2-binary`). Any number
of processes, on any machines that reach the storage, can join one study with
`run_worker` (`ssnas worker --study NAME --storage URL`).

* `n_trials` is the total number of COMPLETE trials wanted across all workers.
  Failed trials do not count (CSNAS re-ran failures until 120 succeeded). Exactly
  `n_trials` complete: a worker starts a trial only when the completed trials plus
  those running or queued with a lower trial number leave room (trial numbers are
  assigned atomically by the storage). A trial that loses that race is closed at
  once as FAIL with user attribute `ssnas:surplus`.
* A trial that raises, or whose loss is NaN/Inf, is closed as FAIL with its reason
  in the user attribute `ssnas:fail_reason`; the search goes on (a UserError other
  than divergence stops it: it is a configuration mistake, not a bad architecture).
  `max_consecutive_failures` failures in a row on one worker stop it.
* Workers send a heartbeat while a trial runs. A trial whose worker died (SIGKILL,
  lost machine) stops beating; after `grace_period` s any worker marks it FAIL and
  re-queues its parameters as a WAITING trial (up to `max_retry` times), which the
  next `ask` picks up. RDB storages use Optuna's own heartbeat
  (`heartbeat_interval`, `grace_period`, `RetryHeartbeatStaleTrialCallback`, the
  successor of `RetryFailedTrialCallback`); the journal file has no heartbeat in
  Optuna, so the worker writes the time into the system attribute `ssnas:heartbeat`
  and cleans up stale trials itself the same way. Heartbeats use each worker's
  clock: keep the machines' clocks in sync (NTP).
* Resume: run the same search again with `task.resume=True`; every completed trial
  stays, a trial left RUNNING is failed and re-queued once its heartbeat is stale.
* An architecture already evaluated in the study is not trained again: its loss is
  reused (user attribute `ssnas:duplicate_of`), and the trial counts.

Watch a study live with optuna-dashboard (`pip install optuna-dashboard`)::

    optuna-dashboard sqlite:///runs/x/study.db
    optuna-dashboard postgresql+psycopg2://user@host:5432/db   # name the driver (SQLAlchemy 2.1)
    optuna-dashboard runs/x/study.journal    # any existing file is opened as a journal

A bare `postgresql://` URL is given to SQLAlchemy as `postgresql+psycopg2://` when psycopg2
is installed (SQLAlchemy 2.1 would otherwise ask for psycopg 3).

Note: Optuna 4.9 deprecated the TPESampler arguments used here (removal planned for
6.0), so this module silences that FutureWarning; pin `optuna<6`.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import socket
import threading
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, Trial, TrialState

from ssnas.errors import TrainingDiverged, UserError
from ssnas.spaces import Architecture
from ssnas.strategies import STRATEGIES
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask
from ssnas.strategies.proxy import Evaluate, ProxyConfig, TrialOutcome, make_evaluator

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random")
DEFAULT_JOURNAL = "study.journal"
STUDY_ATTR = "ssnas"  # study user attribute holding the search settings
HEARTBEAT_ATTR = "ssnas:heartbeat"
FAIL_REASON_ATTR = "ssnas:fail_reason"
SURPLUS_ATTR = "ssnas:surplus"
DUPLICATE_ATTR = "ssnas:duplicate_of"
OVER_BUDGET_ATTR = "ssnas:over_budget"


# --- settings ---------------------------------------------------------------------------------------


class HyperoptGamma:
    """Size of TPE's "good" set after n finished trials: min(ceil(gamma * sqrt(n)), cap).

    hyperopt's `ap_split_trials` (gamma 0.25, linear_forgetting 25).
    """

    def __init__(self, gamma: float = 0.25, cap: int = 25) -> None:
        self.gamma, self.cap = gamma, cap

    def __call__(self, n: int) -> int:
        return min(math.ceil(self.gamma * math.sqrt(n)), self.cap)

    def __repr__(self) -> str:
        return f"HyperoptGamma(gamma={self.gamma}, cap={self.cap})"


@dataclass(frozen=True)
class TPEConfig:
    """TPE settings; the defaults are hyperopt's, which CSNAS used (methods.md §1.4)."""

    n_startup_trials: int = 20
    gamma: float = 0.25
    gamma_cap: int = 25
    n_ei_candidates: int = 24
    prior_weight: float = 1.0
    consider_endpoints: bool = False
    consider_magic_clip: bool = True
    multivariate: bool = False
    constant_liar: bool = True

    def __post_init__(self) -> None:
        if self.n_startup_trials < 0 or self.n_ei_candidates < 1 or self.gamma <= 0 or self.prior_weight < 0:
            raise UserError(
                "TPE needs n_startup_trials >= 0, n_ei_candidates >= 1, gamma > 0 and prior_weight >= 0; "
                f"got {self.n_startup_trials}, {self.n_ei_candidates}, {self.gamma}, {self.prior_weight}"
            )


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


def make_sampler(kind: str, tpe: TPEConfig, seed: int) -> optuna.samplers.BaseSampler:
    """A seeded `TPESampler` with `tpe`'s settings, or a seeded `RandomSampler`."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind != "tpe":
        raise UserError(f"unknown sampler {kind!r}; choose from: {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():  # Optuna 4.9 deprecated these arguments (see the module docstring)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.TPESampler(
            n_startup_trials=tpe.n_startup_trials,
            n_ei_candidates=tpe.n_ei_candidates,
            gamma=HyperoptGamma(tpe.gamma, tpe.gamma_cap),
            prior_weight=tpe.prior_weight,
            consider_endpoints=tpe.consider_endpoints,
            consider_magic_clip=tpe.consider_magic_clip,
            multivariate=tpe.multivariate,
            constant_liar=tpe.constant_liar,
            seed=seed,
        )


# --- storage and liveness ---------------------------------------------------------------------------


# Seconds after which a journal lock nobody refreshes (its holder was killed) is broken.
JOURNAL_LOCK_GRACE = 30


def storage_location(storage: str | None, out_dir: Path | None) -> str | None:
    """The storage a search uses: the given one, else `<out_dir>/study.journal`, else None (memory)."""
    if storage is not None:
        return storage
    return None if out_dir is None else str(Path(out_dir) / DEFAULT_JOURNAL)


def _is_url(location: str) -> bool:
    return "://" in location


class _Liveness:
    """No heartbeat (in-memory storage: one process, nothing can be left behind)."""

    def beat(self, trial_id: int) -> None:
        pass

    def fail_stale(self, study: optuna.Study) -> None:
        pass


class _JournalLiveness(_Liveness):
    """The same contract for the journal file, which has no heartbeat in Optuna: the time of the
    last beat is a trial system attribute, and a trial that never beat counts from its start."""

    def __init__(self, storage: BaseStorage, grace: int, max_retry: int) -> None:
        self.storage, self.grace, self.max_retry = storage, grace, max_retry

    def beat(self, trial_id: int) -> None:
        self.storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def fail_stale(self, study: optuna.Study) -> None:
        now = time.time()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            start = trial.datetime_start.timestamp() if trial.datetime_start else now
            last = float(trial.system_attrs.get(HEARTBEAT_ATTR, start))
            if now - last <= self.grace:
                continue
            try:
                reason = f"no heartbeat for {now - last:.0f} s"
                self.storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR, reason)
                if not self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:  # another worker got there first
                continue
            log.warning("trial %d: worker lost (%s); failed and re-queued", trial.number, reason)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                RetryHeartbeatStaleTrialCallback(self.max_retry)(study, self.storage.get_trial(trial._trial_id))


class _RDBLiveness(_JournalLiveness):
    """Optuna's own heartbeat of RDB storages (stale trials failed and re-queued by its callback),
    plus the journal's rule for a trial that never got a heartbeat: Optuna ignores those, so a
    worker killed between `ask` and its first beat would leave a RUNNING trial forever (found by
    benchmarks/bench_soak.py: a study stuck at 199 of 200)."""

    def __init__(self, storage: RDBStorage, grace: int, max_retry: int) -> None:
        super().__init__(storage, grace, max_retry)
        self.rdb = storage

    def beat(self, trial_id: int) -> None:
        self.rdb.record_heartbeat(trial_id)
        super().beat(trial_id)

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
    raise UserError(f"storage {url} needs a PostgreSQL driver: pip install psycopg2-binary")


def _without_password(url: str) -> str:
    """`scheme://user:***@host/db` for messages."""
    scheme, sep, rest = url.partition("://")
    login, at, host = rest.rpartition("@")
    return url if not at or ":" not in login else f"{scheme}{sep}{login.split(':')[0]}:***@{host}"


def open_storage(location: str | None, config: StudyConfig) -> tuple[BaseStorage, _Liveness]:
    """Open a journal file, SQLite or PostgreSQL storage (or memory for None), with its heartbeat."""
    if location is None:
        return optuna.storages.InMemoryStorage(), _Liveness()
    if _is_url(location):
        url = _with_postgres_driver(location)
        engine_kwargs = {"connect_args": {"timeout": 60}} if location.startswith("sqlite") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            try:
                storage = RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=config.heartbeat_interval,
                    grace_period=config.grace,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(config.max_retry),
                )
            except Exception as error:  # SQLAlchemy: bad URL, unreachable server, wrong password
                raise UserError(f"cannot open storage {_without_password(location)}: {error}".splitlines()[0]) from error
        return storage, _RDBLiveness(storage, config.grace, config.max_retry)
    # Absolute: the lock is a symlink to the journal, and Optuna breaks a lock left by a killed
    # holder by stat-ing through it; a relative target dangles, and the study would hang forever.
    path = Path(location).expanduser().resolve()
    if path.is_dir():
        raise UserError(f"storage {path} is a folder; give a journal file path such as {path / DEFAULT_JOURNAL}")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileSymlinkLock(str(path), grace_period=JOURNAL_LOCK_GRACE)
    storage = JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    return storage, _JournalLiveness(storage, config.grace, config.max_retry)


class _Heartbeat:
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

    def __enter__(self) -> _Heartbeat:
        self.beat()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# --- the worker loop --------------------------------------------------------------------------------


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _worker_seed(seed: int, existing: int, label: str | None) -> int:
    """A fresh search with no trials uses `seed` itself; a resumed search or an extra worker
    gets a different stream (otherwise it would repeat the start-up trials already run)."""
    if existing == 0 and label is None:
        return seed
    entropy = [seed, existing] + ([zlib.crc32(label.encode())] if label else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _count(trials: Sequence[FrozenTrial], *states: TrialState) -> int:
    return sum(t.state in states for t in trials)


def _is_surplus(study: optuna.Study, trial: Trial, n_trials: int) -> bool:
    """True when COMPLETE trials plus running/queued trials numbered below `trial` fill the budget.

    Storages number trials atomically, so of any set of trials that all complete, the
    highest-numbered one saw all the others here: never more than `n_trials` complete.
    """
    trials = study.get_trials(deepcopy=False)
    complete = _count(trials, TrialState.COMPLETE)
    ahead = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < trial.number for t in trials)
    return complete + ahead >= n_trials


def _find_duplicate(study: optuna.Study, key: str) -> FrozenTrial | None:
    for done in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if done.user_attrs.get("arch") == key and DUPLICATE_ATTR not in done.user_attrs:
            return done
    return None


def _suggest(trial: Trial, task: SearchTask) -> Architecture:
    choices = task.space.choices()
    return task.space.make([trial.suggest_categorical(name, list(options)) for name, options in choices.items()])


def _close_failed(study: optuna.Study, trial: Trial, reason: str) -> None:
    trial.set_user_attr(FAIL_REASON_ATTR, reason[:2000])
    study.tell(trial, state=TrialState.FAIL)


def evaluate_safely(evaluate: Evaluate, arch: Architecture) -> tuple[TrialOutcome | None, str]:
    """(outcome, "") or (None, reason) when the trial raised or its loss is not finite.

    A UserError other than TrainingDiverged is re-raised: it is a configuration mistake
    that every trial would repeat, not a property of this architecture.
    """
    try:
        outcome = evaluate(arch)
    except TrainingDiverged as error:
        return None, f"diverged: {error}"
    except UserError:
        raise
    except Exception as error:
        return None, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"
    if not math.isfinite(outcome.loss):
        return None, f"diverged: proxy loss is {outcome.loss}"
    return outcome, ""


def _run_one(study: optuna.Study, trial: Trial, task: SearchTask, evaluate: Evaluate) -> bool:
    """Evaluate one asked trial and tell the result; False when it failed.

    A proposal over the task's budget is not evaluated: it is closed as PRUNED (TPE counts
    pruned trials among the bad ones, so it learns to avoid the region) and does not count.
    """
    arch = _suggest(trial, task)
    trial.set_user_attr("arch", arch.key)
    trial.set_user_attr("worker", worker_label())
    if task.budget is not None and not task.budget.admits(arch):
        trial.set_user_attr(OVER_BUDGET_ATTR, True)
        study.tell(trial, state=TrialState.PRUNED)
        return True
    duplicate = _find_duplicate(study, arch.key)
    if duplicate is not None:
        trial.set_user_attr(DUPLICATE_ATTR, duplicate.number)
        trial.set_user_attr("details", duplicate.user_attrs.get("details", {}))
        study.tell(trial, duplicate.value)
        log.info("trial %d: %s already evaluated by trial %d", trial.number, arch.key, duplicate.number)
        return True
    try:
        outcome, reason = evaluate_safely(evaluate, arch)
    except UserError as error:
        _close_failed(study, trial, f"{type(error).__name__}: {error}")
        raise
    if outcome is None:
        _close_failed(study, trial, reason)
        log.warning("trial %d failed: %s (%s)", trial.number, reason.splitlines()[0], arch.key)
        return False
    trial.set_user_attr("details", {k: float(v) for k, v in outcome.details.items()})
    study.tell(trial, outcome.loss)
    log.info(
        "trial %d: loss %.4f in %.1f s (%.0f img/s) %s", trial.number, outcome.loss,
        outcome.details.get("seconds", float("nan")), outcome.details.get("images_per_second", float("nan")), arch.key,
    )  # fmt: skip
    return True


def _work(
    study: optuna.Study,
    liveness: _Liveness,
    task: SearchTask,
    evaluate: Evaluate,
    config: StudyConfig,
) -> None:
    """Ask, evaluate, tell until the study holds `config.n_trials` COMPLETE trials (or time is up)."""
    started = time.monotonic()
    failures_in_row = 0
    while True:
        liveness.fail_stale(study)
        trials = study.get_trials(deepcopy=False)
        complete = _count(trials, TrialState.COMPLETE)
        if complete >= config.n_trials:
            return
        if config.timeout is not None and time.monotonic() - started > config.timeout:
            log.info("timeout of %.0f s reached with %d complete trials", config.timeout, complete)
            return
        if complete + _count(trials, TrialState.RUNNING) >= config.n_trials:
            time.sleep(config.poll_interval)  # the rest of the budget is running on other workers
            continue
        with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize"
            warnings.simplefilter("ignore")
            trial = study.ask()
        with _Heartbeat(lambda: liveness.beat(trial._trial_id), config.heartbeat_interval):
            if _is_surplus(study, trial, config.n_trials):
                trial.set_user_attr(SURPLUS_ATTR, True)
                _close_failed(study, trial, "surplus: another worker took the last slot of the budget")
                continue
            try:
                completed = _run_one(study, trial, task, evaluate)
            except UpdateFinishedTrialError:  # declared dead by another worker (heartbeat too late)
                log.warning("trial %d was failed by another worker while it ran; its result is dropped", trial.number)
                completed = False
        failures_in_row = 0 if completed else failures_in_row + 1
        if failures_in_row >= config.max_consecutive_failures:
            reason = study._storage.get_trial(trial._trial_id).user_attrs.get(FAIL_REASON_ATTR, "?")
            raise UserError(f"{failures_in_row} trials in a row failed; the last: {reason.splitlines()[0]}")


# --- results ----------------------------------------------------------------------------------------


def _scored(trial: FrozenTrial, task: SearchTask) -> ScoredArch:
    arch = task.space.make([trial.params[name] for name in task.space.choices()])
    details = {"loss": float(trial.value), "trial": float(trial.number), **trial.user_attrs.get("details", {})}
    return ScoredArch(arch, -float(trial.value), details)


def summarize(study: optuna.Study, task: SearchTask, location: str | None) -> SearchResult:
    """Best = the COMPLETE trial with the lowest loss; candidates = one per distinct architecture."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    reasons = Counter(
        str(t.user_attrs.get(FAIL_REASON_ATTR, "worker lost (no heartbeat)")).split(":")[0] for t in failed
    )
    if not complete:
        raise UserError(f"no trial of study {study.study_name!r} completed; failures: {dict(reasons) or 'none'}")
    candidates, seen = [], set()
    for trial in sorted(complete, key=lambda t: t.number):
        scored = _scored(trial, task)
        if scored.arch not in seen:
            seen.add(scored.arch)
            candidates.append(scored)
    best = max(candidates, key=lambda c: c.score)
    seconds = [t.user_attrs.get("details", {}).get("seconds") for t in complete]
    mean_seconds = float(np.mean([s for s in seconds if s is not None] or [math.nan]))
    info: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": location or "memory",
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
    return SearchResult(best=best, candidates=candidates, info=info)


# --- public entry points ----------------------------------------------------------------------------


class OptunaSearch:
    """Ask/tell search over `task.space` with a TPE or random sampler and the CSNAS proxy.

    Args:
        sampler: "tpe" or "random".
        tpe: TPE settings (ignored by "random").
        study: storage, study name, trial budget, heartbeat.
        proxy: how one trial is scored.
        evaluate: replaces the proxy (arch -> TrialOutcome), e.g. a cheap fake in tests.
    """

    def __init__(
        self,
        sampler: str = "tpe",
        tpe: TPEConfig | None = None,
        study: StudyConfig | None = None,
        proxy: ProxyConfig | None = None,
        evaluate: Evaluate | None = None,
    ) -> None:
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {sampler!r}; choose from: {', '.join(SAMPLERS)}")
        self.sampler = sampler
        self.tpe = tpe or TPEConfig()
        self.study = study or StudyConfig()
        self.proxy = proxy or ProxyConfig()
        self.evaluate = evaluate

    def settings(self, task: SearchTask) -> dict[str, Any]:
        """What a joining worker needs to run the same search (stored on the study)."""
        return {
            "sampler": self.sampler,
            "tpe": asdict(self.tpe),
            "proxy": asdict(self.proxy),
            "n_trials": self.study.n_trials,
            "space": task.space.name,
            "objective": task.objective,
            "seed": task.seed,
        }

    def prepare(self, task: SearchTask) -> str | None:
        """Create (or, with `task.resume`, reopen) the study and store the settings on it, so
        workers (`run_worker`) can join before or while `search` runs. Returns the storage
        location (None: in memory)."""
        return self._open(task)[2]

    def check_storage(self) -> None:
        """Open a storage given as a URL now (UserError when unreachable or the password is wrong),
        so a bad URL fails before any run folder is made; journal files are opened by `search`."""
        if self.study.storage is not None and _is_url(self.study.storage):
            open_storage(self.study.storage, self.study)

    def _open(self, task: SearchTask) -> tuple[optuna.Study, _Liveness, str | None]:
        location = storage_location(self.study.storage, task.out_dir)
        storage, liveness = open_storage(location, self.study)
        existing = _existing_trials(storage, self.study.study_name)
        if existing and not task.resume:
            raise UserError(
                f"study {self.study.study_name!r} in {location} already has {existing} trials; "
                "resume it, or choose another study name or storage"
            )
        study = optuna.create_study(
            storage=storage,
            study_name=self.study.study_name,
            sampler=make_sampler(self.sampler, self.tpe, _worker_seed(task.seed, existing, None)),
            direction="minimize",
            load_if_exists=True,
        )
        _check_settings(study, self.settings(task), location)
        study.set_user_attr(STUDY_ATTR, self.settings(task))
        return study, liveness, location

    def search(self, task: SearchTask) -> SearchResult:
        study, liveness, location = self._open(task)
        evaluate = self.evaluate or make_evaluator(task, self.proxy)
        _work(study, liveness, task, evaluate, self.study)
        return summarize(study, task, location)

    def rate(self, task: SearchTask, archs: Sequence[Architecture]) -> list[ScoredArch]:
        """Score each architecture by the proxy (score = -loss; -inf when its trial failed)."""
        evaluate = self.evaluate or make_evaluator(task, self.proxy)
        rated = []
        for arch in archs:
            outcome, reason = evaluate_safely(evaluate, arch)
            if outcome is None:
                log.warning("rating %s failed: %s", arch.key, reason.splitlines()[0])
                rated.append(ScoredArch(arch, float("-inf"), {"failed": 1.0}))
            else:
                rated.append(ScoredArch(arch, -outcome.loss, {"loss": outcome.loss, **outcome.details}))
        return rated


def _existing_trials(storage: BaseStorage, study_name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _check_settings(study: optuna.Study, settings: dict[str, Any], location: str | None) -> None:
    """A study may only be continued by the same kind of search on the same space."""
    stored = study.user_attrs.get(STUDY_ATTR)
    if not stored:
        return
    for key in ("space", "objective", "sampler", "proxy"):
        if stored.get(key) != settings.get(key):
            raise UserError(
                f"study {study.study_name!r} in {location} was started with {key}={stored.get(key)!r}, "
                f"not {settings.get(key)!r}"
            )


def _study_id(storage: BaseStorage, study_name: str, storage_url: str) -> int:
    try:
        return storage.get_study_id_from_name(study_name)
    except KeyError:
        raise UserError(f"no study {study_name!r} in {storage_url}; start it with `ssnas search` first") from None


def check_study(study_name: str, storage_url: str) -> None:
    """UserError unless `storage_url` opens and holds `study_name` (a worker checks this before
    it writes anything; a journal path that does not exist is refused, not created)."""
    if not _is_url(storage_url) and not Path(storage_url).expanduser().is_file():
        raise UserError(f"no study journal at {storage_url}; give the --storage of the running search")
    storage, _ = open_storage(storage_url, StudyConfig())
    try:
        _study_id(storage, study_name, storage_url)
    finally:
        if isinstance(storage, RDBStorage):
            storage.remove_session()
            storage.engine.dispose()


def run_worker(
    study_name: str,
    storage_url: str,
    task: SearchTask,
    n_trials: int | None = None,
    *,
    evaluate: Evaluate | None = None,
    study_config: StudyConfig | None = None,
) -> SearchResult:
    """Join a running study (started by `OptunaSearch.search` with the same storage) and work on it.

    The sampler, TPE settings and proxy settings are read from the study; `n_trials`
    (the total over all workers) defaults to the study's. `study_config` gives the
    heartbeat and polling settings (its storage, name and n_trials are replaced).
    """
    base = study_config or StudyConfig()
    storage, liveness = open_storage(storage_url, base)
    study_id = _study_id(storage, study_name, storage_url)
    settings = storage.get_study_user_attrs(study_id).get(STUDY_ATTR)
    if not settings:
        raise UserError(f"study {study_name!r} in {storage_url} was not started by ssnas (no settings stored)")
    if settings["space"] != task.space.name or settings["objective"] != task.objective:
        raise UserError(
            f"study {study_name!r} searches space {settings['space']!r} with objective {settings['objective']!r}; "
            f"this worker has {task.space.name!r} and {task.objective!r}"
        )
    total = n_trials if n_trials is not None else int(settings["n_trials"])
    config = StudyConfig(**{**asdict(base), "storage": storage_url, "study_name": study_name, "n_trials": total})
    existing = len(storage.get_all_trials(study_id, deepcopy=False))
    sampler = make_sampler(
        settings["sampler"], TPEConfig(**settings["tpe"]), _worker_seed(task.seed, existing, worker_label())
    )
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    proxy = ProxyConfig(**settings["proxy"])
    _work(study, liveness, task, evaluate or make_evaluator(task, proxy), config)
    return summarize(study, task, storage_url)


def _from_settings(sampler: str, settings: dict[str, Any]) -> OptunaSearch:
    """Flat keyword settings (as in a TOML `[strategy]` table) -> OptunaSearch.

    Keys of `TPEConfig` and `StudyConfig` are taken as they are; `ProxyConfig` keys take
    the prefix `proxy_` (`proxy_loss`, `proxy_num_images`, ...). `evaluate` passes through.
    """
    settings = dict(settings)
    evaluate = settings.pop("evaluate", None)
    groups: dict[type, dict[str, Any]] = {TPEConfig: {}, StudyConfig: {}, ProxyConfig: {}}
    for key, value in settings.items():
        for cls, prefix in ((TPEConfig, ""), (StudyConfig, ""), (ProxyConfig, "proxy_")):
            name = key[len(prefix) :] if key.startswith(prefix) else None
            if name is not None and name in {f.name for f in fields(cls)}:
                groups[cls][name] = value
                break
        else:
            valid = [f.name for f in fields(TPEConfig)] + [f.name for f in fields(StudyConfig)]
            valid += [f"proxy_{f.name}" for f in fields(ProxyConfig)]
            raise UserError(f"unknown {sampler} setting {key!r}; valid settings: {', '.join(valid)}")
    if sampler == "random" and groups[TPEConfig]:
        raise UserError(f"random search takes no TPE settings, got {', '.join(groups[TPEConfig])}")
    return OptunaSearch(
        sampler,
        tpe=TPEConfig(**groups[TPEConfig]),
        study=StudyConfig(**groups[StudyConfig]),
        proxy=ProxyConfig(**groups[ProxyConfig]),
        evaluate=evaluate,
    )


@STRATEGIES.register("tpe")
def tpe_search(**settings: Any) -> OptunaSearch:
    """CSNAS: TPE with hyperopt's defaults over the from-scratch SSL proxy."""
    return _from_settings("tpe", settings)


@STRATEGIES.register("random")
def random_search(**settings: Any) -> OptunaSearch:
    """Random search with the same proxy, loop and storage as `tpe`."""
    return _from_settings("random", settings)


__all__ = [
    "SAMPLERS",
    "HyperoptGamma",
    "OptunaSearch",
    "StudyConfig",
    "TPEConfig",
    "make_sampler",
    "open_storage",
    "random_search",
    "run_worker",
    "storage_location",
    "summarize",
    "tpe_search",
]

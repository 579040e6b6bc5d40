"""Sequential model-based search with Optuna's ask/tell: TPE (CSNAS) and random search.

Nguyen & Chang, "CSNAS" (arXiv 2102.10557; namnguyen0510/CSNAS search/search.py): hyperopt's TPE over the
cell encoding, every trial scored by a from-scratch self-supervised proxy
(`ssnas.strategies.proxy`), the best cell = the trial with the lowest loss. Here the
optimiser is Optuna (its samplers here, its storages in `ssnas.studies`: the two
modules that import it), configured to hyperopt's defaults, and the baseline `random` runs the same loop with
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

Storage, parallel workers and resumption: `ssnas.studies` (journal file, SQLite or
PostgreSQL; heartbeats; exactly `n_trials` COMPLETE trials over any number of workers).
This module adds what a trial means:

* A trial that raises, or whose loss is NaN/Inf, is closed as FAIL with its reason
  in the user attribute `ssnas:fail_reason`; the search goes on (a UserError other
  than divergence stops it: it is a configuration mistake, not a bad architecture).
* An architecture over the task's budget is closed as PRUNED without training.
* An architecture already evaluated in the study is not trained again: its loss is
  reused (user attribute `ssnas:duplicate_of`), and the trial counts.
* Resume: run the same search again with `task.resume=True`; a study may only be
  continued with the same space, objective, sampler and proxy.

Note: Optuna 4.9 deprecated the TPESampler arguments used here (removal planned for
6.0), so this module silences that FutureWarning; pin `optuna<6`.
"""

from __future__ import annotations

import functools
import logging
import math
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, Trial, TrialState

from ssnas.errors import TrainingDiverged, UserError
from ssnas.paths import expand_user
from ssnas.runfolder import check_writable_folder
from ssnas.spaces import Architecture
from ssnas.strategies import STRATEGIES
from ssnas.data.split import Share
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask, Strategy
from ssnas.strategies.proxy import BF16_KEEPS_QUALITY, Evaluate, ProxyConfig, TrialOutcome, make_evaluator
from ssnas.strategies.raters import rating_for
from ssnas.strategies.settings import (
    DEFAULT_OBJECTIVE, FINISH_SECONDS, FULL_NETWORK, PRESETS, STANDALONE_SIZED, TRAINING, ImageFloor, Training, fill, given,
    settings_for, sized, standalone_network,
)  # fmt: skip
from ssnas.training.distributed import process_group
from ssnas.studies import (
    DUPLICATE_ATTR,
    OVER_BUDGET_ATTR,
    STUDY_ATTR,
    Liveness,
    StudyConfig,
    TrialBudget,
    check_study,
    close_failed,
    existing_trials,
    is_url,
    masked_url,
    open_storage,
    storage_location,
    study_id,
    study_info,
    work,
    worker_label,
    worker_seed,
)

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random")


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
    """TPE settings; the defaults are hyperopt's, which CSNAS used (its search/search.py passes none)."""

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


# --- one trial ------------------------------------------------------------------------------------


def _find_duplicate(study: optuna.Study, key: str) -> FrozenTrial | None:
    for done in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if done.user_attrs.get("arch") == key and DUPLICATE_ATTR not in done.user_attrs:
            return done
    return None


def _suggest(trial: Trial, task: SearchTask) -> Architecture:
    choices = task.space.choices()
    return task.space.make([trial.suggest_categorical(name, list(options)) for name, options in choices.items()])


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
        close_failed(study, trial, f"{type(error).__name__}: {error}")
        raise
    if outcome is None:
        close_failed(study, trial, reason)
        log.warning("trial %d failed: %s (%s)", trial.number, reason.splitlines()[0], arch.key)
        return False
    trial.set_user_attr("details", {k: float(v) for k, v in outcome.details.items()})
    study.tell(trial, outcome.loss)
    log.info(
        "trial %d: loss %.4f in %.1f s (%.0f img/s) %s", trial.number, outcome.loss,
        outcome.details.get("seconds", float("nan")), outcome.details.get("images_per_second", float("nan")), arch.key,
    )  # fmt: skip
    return True


# --- results ----------------------------------------------------------------------------------------


def _scored(trial: FrozenTrial, task: SearchTask) -> ScoredArch:
    assert trial.value is not None, "only COMPLETE trials are scored"
    arch = task.space.make([trial.params[name] for name in task.space.choices()])
    details = {"loss": float(trial.value), "trial": float(trial.number), **trial.user_attrs.get("details", {})}
    return ScoredArch(arch, -float(trial.value), details)


def summarize(study: optuna.Study, task: SearchTask, location: str | None) -> SearchResult:
    """Best = the COMPLETE trial with the lowest loss; candidates = one per distinct architecture;
    info = `ssnas.studies.study_info` (UserError when no trial completed)."""
    info = study_info(study, location)
    candidates, seen = [], set()
    for trial in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        scored = _scored(trial, task)
        if scored.arch not in seen:
            seen.add(scored.arch)
            candidates.append(scored)
    best = max(candidates, key=lambda c: c.score)
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
            "proxy": self.proxy.saved(),
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
        """Open the given storage now (UserError when unreachable, the password is wrong or the file
        is no journal), so it fails before any run folder is made; a new journal file is created by
        `search`, and here only its folder is checked."""
        location = self.study.storage
        if location is None:
            return
        if is_url(location) or expand_user(location).exists():
            open_storage(location, self.study)
        else:
            check_writable_folder(expand_user(location).parent, "--storage")

    def _open(self, task: SearchTask) -> tuple[optuna.Study, Liveness, str | None]:
        location = storage_location(self.study.storage, task.out_dir)
        storage, liveness = open_storage(location, self.study)
        existing = existing_trials(storage, self.study.study_name)
        if existing and not task.resume:
            raise UserError(
                f"study {self.study.study_name!r} in {_shown(location)} already has {existing} trials; "
                "resume it, or choose another study name or storage"
            )
        study = optuna.create_study(
            storage=storage,
            study_name=self.study.study_name,
            sampler=make_sampler(self.sampler, self.tpe, worker_seed(task.seed, existing, None)),
            direction="minimize",
            load_if_exists=True,
        )
        _check_settings(study, self.settings(task), location)
        study.set_user_attr(STUDY_ATTR, self.settings(task))
        return study, liveness, location

    def search(self, task: SearchTask) -> SearchResult:
        study, liveness, location = self._open(task)
        evaluate = self.evaluate or make_evaluator(task, self.proxy)
        run = functools.partial(_run_one, task=task, evaluate=evaluate)
        work(study, liveness, TrialBudget(run, self.study), self.study)
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


def _shown(location: str | None) -> str:
    """The storage in a message: its URL without the password, or "memory"."""
    return masked_url(location) if location is not None else "memory"


def _check_settings(study: optuna.Study, settings: dict[str, Any], location: str | None) -> None:
    """A study may only be continued by the same kind of search on the same space."""
    stored = study.user_attrs.get(STUDY_ATTR)
    if not stored:
        return
    for key in ("space", "objective", "sampler", "proxy"):
        if stored.get(key) != settings.get(key):
            raise UserError(
                f"study {study.study_name!r} in {_shown(location)} was started with {key}={stored.get(key)!r}, "
                f"not {settings.get(key)!r}"
            )


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
    settings = storage.get_study_user_attrs(study_id(storage, study_name, storage_url)).get(STUDY_ATTR)
    if not settings:
        raise UserError(f"study {study_name!r} in {_shown(storage_url)} was not started by ssnas (no settings stored)")
    if settings["space"] != task.space.name or settings["objective"] != task.objective:
        raise UserError(
            f"study {study_name!r} searches space {settings['space']!r} with objective {settings['objective']!r}; "
            f"this worker has {task.space.name!r} and {task.objective!r}"
        )
    total = n_trials if n_trials is not None else int(settings["n_trials"])
    config = StudyConfig(**{**asdict(base), "storage": storage_url, "study_name": study_name, "n_trials": total})
    existing = existing_trials(storage, study_name)
    sampler = make_sampler(
        settings["sampler"], TPEConfig(**settings["tpe"]), worker_seed(task.seed, existing, worker_label())
    )
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    proxy = ProxyConfig.from_saved(settings["proxy"])
    evaluate = evaluate or make_evaluator(task, proxy)
    work(study, liveness, TrialBudget(functools.partial(_run_one, task=task, evaluate=evaluate), config), config)
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


# tpe / random trials train from scratch, as CSNAS does, unless --trial-objective rating.
DEFAULT_TRIAL_OBJECTIVE = "ssl-proxy"

# CSNAS (arXiv 2102.10557, search/search.py) trains every trial from scratch for 10 epochs, whatever
# the preset, on 1 % of the training images (at least one batch: the strategy's floor), scored on 256
# held-out images.
CSNAS_EPOCHS = 10
CSNAS_TRAIN_FRACTION = 0.01
CSNAS_HOLDOUT = Share(0.0, 256, 256)


@settings_for("tpe", "random")
@dataclass(frozen=True)
class OptunaSettings(Training):
    """tpe (CSNAS) and random search: Optuna trials (`StudyConfig`) scored by `ProxyConfig`.

    trial_objective: "ssl-proxy" (train each trial: the objective, training settings and
        proxy_loss apply) or "rating" (a label-free rating at initialisation: ranker and
        rating_batch_size apply).
    proxy_loss: "holdout" (the SSL loss on held-out images) or "train" (the final epoch's
        training loss, as the CSNAS code reports).
    time_budget: minutes after which no trial starts (Optuna's timeout, counted from the first trial).
    storage: journal file, sqlite:/// or postgresql:// URL; None = `study.journal` in the run folder.
    channels / cells: the trial network's size [nb201: the preset's; darts: 32, 8].
    """

    bf16_keeps_quality: ClassVar[bool] = BF16_KEEPS_QUALITY

    trials: int | None = None
    time_budget: float | None = None
    storage: str | None = None
    study: str | None = None
    trial_objective: str | None = None
    objective: str | None = None
    proxy_loss: str | None = None
    ranker: str | None = None
    rating_batch_size: int | None = None
    channels: int | None = None
    cells: int | None = None

    @property
    def trial_mode(self) -> str:
        """The trial objective, given or default: what decides the options that apply."""
        return self.trial_objective or DEFAULT_TRIAL_OBJECTIVE

    def mode(self) -> str:
        return f"--trial-objective {self.trial_mode}"

    def options(self, space: str) -> tuple[str, ...]:
        shared, network = ("trials", "time_budget", "storage", "study", "trial_objective"), sized(space, STANDALONE_SIZED)
        if self.trial_mode == "rating":
            return (*shared, "ranker", "rating_batch_size", *network)
        return (*shared, "objective", *TRAINING, "proxy_loss", *network)

    def resolve(self, space: str, preset: str) -> OptunaSettings:
        network = FULL_NETWORK["darts"] if space == "darts" else {}  # CSNAS's proxy network; nb201: the preset's
        ranker, batch_size = rating_for(space, None, None)
        defaults = {**PRESETS[preset], **network, "epochs": CSNAS_EPOCHS, "objective": DEFAULT_OBJECTIVE,
                    "trial_objective": DEFAULT_TRIAL_OBJECTIVE, "proxy_loss": "holdout", "study": "ssnas",
                    "ranker": ranker, "rating_batch_size": batch_size}  # fmt: skip
        return fill(self, self.options(space), defaults)

    def network(self, space: str) -> dict[str, int]:
        return standalone_network(space, self.channels, self.cells)

    def create(self, name: str, space: str, preset: str) -> Strategy:
        timeout = self.time_budget * 60.0 - FINISH_SECONDS if self.time_budget is not None else None
        study = StudyConfig(n_trials=given(self.trials), storage=self.storage, study_name=given(self.study), timeout=timeout)
        proxy = ProxyConfig(loss=self.proxy_loss or "holdout", trial_objective=given(self.trial_objective),
                            ranker=self.ranker, rating_batch_size=self.rating_batch_size)  # fmt: skip
        return OptunaSearch(name, study=study, proxy=proxy)

    def scored_by(self) -> str:
        if self.trial_mode == "rating":
            return f"the label-free rating {self.ranker} at initialisation"
        return f"the {self.objective} loss ({self.proxy_loss}) of each trial trained from scratch"

    def image_floor(self, space: str) -> ImageFloor:
        """CSNAS's: one training batch per trial, 256 held-out images."""
        return ImageFloor(self.batch_size or 128, CSNAS_HOLDOUT.floor)

    def shares(self, preset: str) -> tuple[Share, Share]:
        return Share(CSNAS_TRAIN_FRACTION, 0), CSNAS_HOLDOUT  # CSNAS's trial scale: 1 % of the folder

    def check_launch(self, strategy: Strategy) -> None:
        if process_group() is not None:
            raise UserError("tpe / random run one trial per process: start more with `ssnas worker`, not torchrun")
        assert isinstance(strategy, OptunaSearch)
        strategy.check_storage()  # a wrong URL or password fails before the run folder exists


__all__ = [
    "CSNAS_EPOCHS",
    "CSNAS_HOLDOUT",
    "CSNAS_TRAIN_FRACTION",
    "DEFAULT_TRIAL_OBJECTIVE",
    "OptunaSettings",
    "SAMPLERS",
    "HyperoptGamma",
    "OptunaSearch",
    "StudyConfig",  # from ssnas.studies: OptunaSearch's `study` settings
    "TPEConfig",
    "check_study",  # from ssnas.studies, for ssnas.run until it imports it from there
    "make_sampler",
    "random_search",
    "run_worker",
    "summarize",
    "tpe_search",
]

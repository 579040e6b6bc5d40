"""The two-stage search: a training-free search keeps a shortlist, a self-supervised judge picks.

Run it with `--strategy two-stage`; no space runs it unless asked (`ssnas.run.presets.SPACE_STRATEGIES`:
it did not beat evolution alone on NB201's development seeds).

Stage 1 is aging evolution over the space's measured label-free ranker at initialisation
(`ssnas.strategies.evolution`): it orders the bulk of a space well but not its top. Stage 2
trains each of the best `shortlist` candidates of stage 1 briefly from scratch with a
self-supervised pretext task on the user's unlabeled images (`ssnas.judging`; rotation
prediction, after UnNAS, Liu et al. ECCV 2020) and ranks them by a label-free signal measured
on held-out images after that training, combined with the stage-1 score by mean rank
(`ssnas.judging.defaults`, chosen on NB201's development half by `benchmarks/bench_shortlist.py`).

Time: `time_budget` minutes is what the whole run may take, counted from the run's start
(`SearchTask.started`). At the start, one rating and a few training steps are timed; a budget
that cannot hold stage 1 and two judged candidates at the smallest training is refused before
any work. After stage 1 every shortlisted candidate's training speed is timed and the plan
(shortlist size, backbone passes per candidate) is fitted into what is left, saved to
`judge/plan.json`. Each candidate is a checkpointed unit (`judge/NN/checkpoint.pt`, then
`judge/NN/judgement.json`): a run killed at any point and resumed replays the saved plan and
ends with the same result. A run that falls behind its plan (a busy machine) stops judging
before the budget is exceeded and picks among the candidates judged.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from ssnas.atomic import write_atomic
from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.judging import SIGNAL_NAMES, JudgeConfig, Judgement, judge_network
from ssnas.judging.judge import BF16_KEEPS_QUALITY as JUDGE_BF16_KEEPS_QUALITY
from ssnas.judging.defaults import judge_defaults
from ssnas.objectives import create_objective
from ssnas.rating.aggregate import mean_rank
from ssnas.rating.engine import build_network, resized
from ssnas.rating.structural import STRUCTURAL
from ssnas.spaces import Architecture, SearchSpace
from ssnas.strategies import STRATEGIES
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask, Strategy
from ssnas.strategies.evolution import EVOLUTION_OPTIONS, Evolution, EvolutionConfig, EvolutionSettings
from ssnas.strategies.settings import ImageFloor, fill, given, settings_for
from ssnas.strategies.raters import create_rater
from ssnas.runfolder import corrupt, read_json
from ssnas.training.loop import CHECKPOINT_NAME, TrainConfig, train
from ssnas.training.precision import resolve_precision_name
from ssnas.training.progress import StageProgress, format_duration

log = logging.getLogger(__name__)

JUDGE_FOLDER = "judge"
PLAN_FILE = "plan.json"
JUDGEMENT_FILE = "judgement.json"
MIN_PASSES = 2_000  # the smallest training per candidate (bench_shortlist's lowest rung)
MIN_SHORTLIST = 2  # a judge needs two candidates to choose between
SAFETY = 0.9  # share of the time left that the plan fills (signals, jitter)
FINISH_SECONDS = 5.0  # kept for writing result.json, candidates.csv and report.html
OVERHEAD_SECONDS = 2.0  # per candidate before it is measured: network build, signals after training
CALIBRATION_STEPS = 3
LABEL_FREE_OBJECTIVES = ("rotation", "simclr")  # the judge's "supervised" is a benchmark reference only


@dataclass(frozen=True)
class TwoStageConfig:
    """Settings of the two-stage search (None = the space's default, `ssnas.judging.defaults`).

    stage1: the evolution run that keeps the shortlist.
    time_budget: minutes the whole run may take.
    shortlist: candidates judged (None: as many as fit, up to the space's default).
    judge_budget: backbone passes per candidate (None: the space's default, less if the time is short).
    judge_objective / judge_signal / combine: the judge (see `JudgeDefaults`).
    judge_network: network-size overrides of the space for the judge.
    """

    stage1: EvolutionConfig = field(default_factory=EvolutionConfig)
    time_budget: float = 15.0
    shortlist: int | None = None
    judge_budget: int | None = None
    judge_objective: str | None = None
    judge_signal: str | None = None
    combine: tuple[str, ...] | None = None
    judge_network: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if not self.time_budget > 0 or not math.isfinite(self.time_budget):
            raise UserError(f"--time-budget must be a positive number of minutes, got {self.time_budget}")
        if self.stage1.ratings is None or self.stage1.time_budget is not None:
            raise UserError("two-stage's stage 1 rates a fixed number (--ratings); --time-budget is the whole run's")
        if self.shortlist is not None and self.shortlist < MIN_SHORTLIST:
            raise UserError(f"--shortlist must be at least {MIN_SHORTLIST} (a judge chooses between candidates), "
                            f"got {self.shortlist}")  # fmt: skip
        if self.judge_budget is not None and self.judge_budget < MIN_PASSES:
            raise UserError(f"--judge-budget must be at least {MIN_PASSES} backbone passes, got {self.judge_budget}")
        if self.judge_objective is not None and self.judge_objective not in LABEL_FREE_OBJECTIVES:
            raise UserError(f"unknown --judge-objective {self.judge_objective!r}; choose from: "
                            f"{', '.join(LABEL_FREE_OBJECTIVES)}")  # fmt: skip
        if self.combine is not None:
            object.__setattr__(self, "combine", tuple(self.combine))
            unknown = [c for c in self.combine if c != "stage1" and c not in STRUCTURAL]
            if unknown:
                raise UserError(f"unknown --judge-combine {', '.join(unknown)}; choose from: stage1, "
                                f"{', '.join(STRUCTURAL.names())}")  # fmt: skip
        if self.judge_signal is not None and self.judge_signal not in SIGNAL_NAMES:
            raise UserError(f"unknown --judge-signal {self.judge_signal!r}; choose from: {', '.join(SIGNAL_NAMES)}")


@dataclass
class Plan:
    """Stage 2's plan, fixed once (saved so a resumed run replays it)."""

    shortlist: list[str]  # architecture keys, stage-1 order
    image_passes: int
    passes_per_second: list[float]  # measured per shortlisted candidate
    seconds_left: float
    estimated_seconds: float


@STRATEGIES.register("two-stage")
class TwoStage:
    """Evolution keeps a shortlist; brief self-supervised training and a label-free signal pick."""

    def __init__(self, config: TwoStageConfig | None = None) -> None:
        self.config = config or TwoStageConfig()

    def search(self, task: SearchTask) -> SearchResult:
        cfg, space = self.config, task.space
        defaults = judge_defaults(space.name)
        started = task.started if task.started is not None else time.monotonic()
        deadline = started + cfg.time_budget * 60.0 - FINISH_SECONDS
        judge_size = cfg.judge_network if cfg.judge_network is not None else defaults.network
        judge_space = resized(space, judge_size)
        judge = JudgeConfig(
            objective=cfg.judge_objective or defaults.objective,
            image_passes=cfg.judge_budget or defaults.image_passes,
            precision=resolve_precision_name(task.train.precision, task.train.device, JUDGE_BF16_KEEPS_QUALITY),
            seed=task.seed,
            trained_signals=(cfg.judge_signal or defaults.signal).startswith("trained-"),  # only when they decide
        )  # fmt: skip
        signal = cfg.judge_signal or defaults.signal
        combine = defaults.combine if cfg.combine is None else cfg.combine
        folder = task.out_dir / JUDGE_FOLDER if task.out_dir is not None else None
        saved_plan = _load_plan(folder) if task.resume else None
        if saved_plan is None:
            self._check_feasible(task, judge_space, judge, deadline)

        first = Evolution(cfg.stage1).search(task)
        log.info("stage 1: %d rated, shortlist from its best; %s of the %s budget used", first.info["rated"],
                 format_duration(time.monotonic() - started), format_duration(cfg.time_budget * 60))  # fmt: skip
        plan = saved_plan or self._plan(task, first, judge_space, judge, deadline, defaults.shortlist)
        if folder is not None and saved_plan is None:
            write_atomic(folder / PLAN_FILE, json.dumps(asdict(plan), indent=1))
        judge = replace(judge, image_passes=plan.image_passes)
        stage1 = {c.arch.key: c for c in first.candidates}
        judged = self._judge_all(task, plan, judge_space, judge, deadline, folder, signal)
        candidates = _ranked(judged, stage1, first.candidates, signal, combine, space)
        info = {
            **{f"stage1_{k}": v for k, v in first.info.items()},
            "judge": {
                "objective": judge.objective, "signal": signal, "combine": list(combine),
                "image_passes": plan.image_passes, "shortlist": plan.shortlist, "judged": len(judged),
                "network": dict(judge_size),
                "estimated_seconds": plan.estimated_seconds, "seconds_left": plan.seconds_left,
                "candidates": [
                    {"arch": key, "stage1_score": stage1[key].score, "signals": j.signals, "seconds": j.seconds,
                     "passes_per_second": j.passes_per_second, "curve": j.losses[:: max(1, len(j.losses) // 100)]}
                    for key, j in judged.items()
                ],
            },
        }  # fmt: skip
        info["run_seconds"] = time.monotonic() - started
        best = candidates[0]
        log.info("stage 2 picked %s (stage-1 rank %d of the shortlist)", best.arch.key,
                 plan.shortlist.index(best.arch.key) + 1 if best.arch.key in plan.shortlist else 0)  # fmt: skip
        return SearchResult(best=best, candidates=candidates, info=info)

    # --- time ---------------------------------------------------------------------------------------

    def _check_feasible(self, task: SearchTask, judge_space: SearchSpace, judge: JudgeConfig, deadline: float) -> None:
        """Refuse, before any work, a budget that cannot hold stage 1 and two candidates at the smallest training."""
        rng = random.Random(task.seed)
        arch = task.space.sample(rng)
        rater = create_rater(task, *self.config.stage1.rating_for(task.space.name))
        clock = time.monotonic()
        rater.columns([arch])
        per_rating = time.monotonic() - clock
        speed = _passes_per_second(judge_space, arch, task, judge)
        ratings = self.config.stage1.ratings
        assert ratings is not None, "stage 1 rates a fixed number (the time budget is the whole run's)"
        stage1 = per_rating * ratings
        needed = stage1 + MIN_SHORTLIST * MIN_PASSES / speed
        left = deadline - time.monotonic()
        if needed > left:
            raise UserError(
                f"--time-budget {self.config.time_budget:g} min is too small: stage 1 needs about "
                f"{format_duration(stage1)} and judging {MIN_SHORTLIST} candidates at the smallest training "
                f"{format_duration(needed - stage1)} on this machine, {format_duration(left)} is left"
            )

    def _plan(self, task: SearchTask, first: SearchResult, judge_space: SearchSpace, judge: JudgeConfig,
              deadline: float, max_shortlist: int) -> Plan:  # fmt: skip
        """Shortlist size and passes per candidate that fit the time left (given ones are kept)."""
        cfg = self.config
        wanted = cfg.shortlist or max_shortlist
        keys = [c.arch.key for c in first.candidates[:wanted]]
        speeds = [_passes_per_second(judge_space, task.space.parse(k), task, judge) for k in keys]
        left = (deadline - time.monotonic()) * SAFETY
        overhead = OVERHEAD_SECONDS
        passes = cfg.judge_budget or judge.image_passes

        def cost(count: int, per: int) -> float:
            return sum(per / s + overhead for s in speeds[:count])

        count = len(keys)
        if cfg.shortlist is None:  # as many as fit at the wanted training
            while count > MIN_SHORTLIST and cost(count, passes) > left:
                count -= 1
        if cfg.judge_budget is None:  # less training per candidate when even that does not fit
            while passes > MIN_PASSES and cost(count, passes) > left:
                passes = max(MIN_PASSES, int(passes * 0.8))
        if cost(count, passes) > left:
            given = " and ".join(f for f, v in (("--shortlist", cfg.shortlist), ("--judge-budget", cfg.judge_budget)) if v)
            raise UserError(
                f"stage 2 needs about {format_duration(cost(count, passes))} for {count} candidates of {passes} passes "
                f"but {format_duration(left / SAFETY)} of --time-budget {cfg.time_budget:g} min is left"
                + (f"; lower {given}" if given else "; raise --time-budget")
            )
        plan = Plan(keys[:count], passes, speeds[:count], left / SAFETY, cost(count, passes))
        log.info("stage 2 plan: %d candidates x %d passes (about %s; %s left)", count, passes,
                 format_duration(plan.estimated_seconds), format_duration(plan.seconds_left))  # fmt: skip
        return plan

    # --- judging ------------------------------------------------------------------------------------

    def _judge_all(self, task: SearchTask, plan: Plan, judge_space: SearchSpace, judge: JudgeConfig,
                   deadline: float, folder: Path | None, signal: str) -> dict[str, Judgement]:  # fmt: skip
        judged: dict[str, Judgement] = {}
        total = len(plan.shortlist)
        planned_spent = spent = 0.0  # this run's judging: as planned, and as it went (a busy machine is slower)
        with StageProgress("judge", total, unit="candidates judged", bar=task.train.progress) as progress:
            for number, key in enumerate(plan.shortlist):
                unit = folder / f"{number:02d}" if folder is not None else None
                done = unit / JUDGEMENT_FILE if unit is not None else None
                if done is not None and done.exists():
                    judged[key] = _load_judgement(done)
                else:
                    expected = plan.image_passes / plan.passes_per_second[number] + OVERHEAD_SECONDS
                    slowdown = max(1.0, spent / planned_spent) if planned_spent else 1.0
                    if len(judged) >= MIN_SHORTLIST and time.monotonic() + expected * slowdown > deadline:
                        log.warning("stage 2 is behind its plan: %d of %d candidates judged when the time budget "
                                    "ran out; picking among them", len(judged), total)  # fmt: skip
                        break
                    clock = time.monotonic()
                    network = build_network(judge_space, task.space.parse(key), task.seed)
                    judged[key] = judge_network(network, task.images, task.holdout_images, judge, out_dir=unit,
                                                resume=task.resume, device=task.train.device)  # fmt: skip
                    planned_spent, spent = planned_spent + expected, spent + time.monotonic() - clock
                    if done is not None and unit is not None:
                        write_atomic(done, json.dumps(judged[key].to_dict()))
                        (unit / CHECKPOINT_NAME).unlink(missing_ok=True)  # judged: the weights are not needed again
                j = judged[key]
                shown = dict.fromkeys((signal, "pretext-accuracy", "pretext-loss"))  # the deciding signal first
                status = (f"{key} stage-1 #{number + 1}: {j.steps} steps in {format_duration(j.seconds)} "
                          f"({j.passes_per_second:.0f} passes/s), " + ", ".join(
                              f"{name} {j.signals[name]:.4g}" for name in shown
                              if name in j.signals and math.isfinite(j.signals[name])))  # fmt: skip
                progress.update(number + 1, status=status, force_line=True)
        return judged


def _passes_per_second(space: SearchSpace, arch: Architecture, task: SearchTask, judge: JudgeConfig) -> float:
    """Backbone passes per second of `arch`'s judge training here (a few timed steps after one warm-up)."""
    objective = create_objective(judge.objective)
    batch, _ = judge.steps(objective.passes_per_image)
    images = task.images[: batch * (CALIBRATION_STEPS + 1)]
    if len(images) < batch:
        raise UserError(f"the judge needs at least {batch} training images, got {len(task.images)}")
    network = build_network(space, arch, task.seed)
    config = TrainConfig(epochs=1, batch_size=batch, precision=judge.precision, device=task.train.device,
                         seed=task.seed, progress=False)  # fmt: skip
    views = VIEWS.create(objective.view_recipe)
    with _quiet("ssnas.training", "ssnas.progress"):
        train(network, objective, images[:batch], views, config)  # warm-up (allocations, kernels)
        result = train(build_network(space, arch, task.seed), create_objective(judge.objective), images, views, config)
    return max(1e-6, result.images_per_second * objective.passes_per_image)


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """The named loggers at WARNING for a while (timing steps are not training a user asked for)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _ranked(judged: dict[str, Judgement], stage1: dict[str, ScoredArch], everyone: list[ScoredArch], signal: str,
            combine: tuple[str, ...], space: SearchSpace) -> list[ScoredArch]:  # fmt: skip
    """Judged candidates first, by the mean rank of the signal and its `combine` partners, then the rest
    in stage-1 order."""
    keys = list(judged)
    if keys and signal not in judged[keys[0]].signals:
        raise UserError(f"unknown judge signal {signal!r}; choose from: {', '.join(judged[keys[0]].signals)}")
    columns = [[judged[k].signals[signal] for k in keys]]  # non-finite values rank last
    for partner in combine:
        columns.append([stage1[k].score for k in keys] if partner == "stage1"
                       else STRUCTURAL.get(partner)(space, [stage1[k].arch for k in keys]))  # fmt: skip
    ranks = mean_rank(columns)  # the mean of the columns' fractional ranks
    # ties (equal mean rank) go to the better stage-1 candidate: `keys` is in stage-1 order
    order = sorted(range(len(keys)), key=lambda i: -ranks[i])
    ranked = [  # judged: 1 + mean rank in (1, 2]; the rest below, in stage-1 order, in (0, 1)
        ScoredArch(stage1[keys[i]].arch, 1.0 + float(ranks[i]),
                   {**stage1[keys[i]].details, "stage1_score": stage1[keys[i]].score,
                    **{f"judge:{n}": v for n, v in judged[keys[i]].signals.items()}})
        for i in order
    ]  # fmt: skip
    rest = [c for c in everyone if c.arch.key not in judged]
    ranked += [ScoredArch(c.arch, 1.0 - (i + 1) / (len(rest) + 1), {**c.details, "stage1_score": c.score})
               for i, c in enumerate(rest)]  # fmt: skip
    return ranked


def _load_plan(folder: Path | None) -> Plan | None:
    path = folder / PLAN_FILE if folder is not None else None
    if path is None or not path.exists():
        return None
    try:
        return Plan(**read_json(path))
    except TypeError:  # not an object, or other fields than a plan's
        raise corrupt(path, "not a stage-2 plan") from None


def _load_judgement(path: Path) -> Judgement:
    try:
        return Judgement.from_dict(read_json(path))
    except TypeError:
        raise corrupt(path, "not a judgement") from None


@settings_for("two-stage")
@dataclass(frozen=True)
class TwoStageSettings(EvolutionSettings):
    """The two-stage search (`TwoStageConfig`): evolution keeps a shortlist (the evolution options),
    then each shortlisted candidate trains briefly without labels and a label-free signal picks.

    time_budget: minutes the whole run may take [15].
    shortlist: candidates judged [as many as fit, up to the space's judge default].
    judge_budget: backbone passes per candidate [the space's judge default, less if time is short].
    judge_objective / judge_signal / judge_combine: the judge's training, signal and the partners
        averaged with it by rank [`ssnas.judging.defaults`].
    """

    bf16_keeps_quality: ClassVar[bool] = JUDGE_BF16_KEEPS_QUALITY  # the judge trains

    time_budget: float | None = None
    shortlist: int | None = None
    judge_budget: int | None = None
    judge_objective: str | None = None
    judge_signal: str | None = None
    judge_combine: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.judge_combine is not None:
            object.__setattr__(self, "judge_combine", tuple(self.judge_combine))

    def options(self, space: str) -> tuple[str, ...]:
        judge = ("shortlist", "judge_budget", "judge_objective", "judge_signal", "judge_combine")
        return (*super().options(space), *judge)

    def resolve(self, space: str, preset: str) -> TwoStageSettings:
        judge = judge_defaults(space)
        # the evolution options of `self`; stage 1 rates a fixed number (the time budget is the whole run's)
        stage1 = EvolutionSettings.resolved(replace(self, time_budget=None), space, None)
        return fill(replace(self, **{f: getattr(stage1, f) for f in EVOLUTION_OPTIONS}), self.options(space),
                    {"time_budget": TwoStageConfig().time_budget, "judge_objective": judge.objective,
                     "judge_signal": judge.signal, "judge_combine": judge.combine})  # fmt: skip

    def create(self, name: str, space: str, preset: str) -> Strategy:
        stage1 = replace(self, time_budget=None).evolution_config()  # the budget is the whole run's (TwoStageConfig)
        return TwoStage(TwoStageConfig(stage1=stage1, time_budget=given(self.time_budget), shortlist=self.shortlist,
                                       judge_budget=self.judge_budget, judge_objective=self.judge_objective,
                                       judge_signal=self.judge_signal, combine=self.judge_combine))  # fmt: skip

    def scored_by(self) -> str:
        partners = f" with {' + '.join(self.judge_combine)}" if self.judge_combine else ""
        return (f"the label-free rating {self.ranker} at initialisation (stage 1), then {self.judge_signal}{partners} "
                f"after brief {self.judge_objective} training of the shortlist (stage 2)")

    def image_floor(self, space: str) -> ImageFloor:
        """Stage 1's rating batch; the judge's training batch and the held-out batch of its signals."""
        training, holdout = JudgeConfig(objective=given(self.judge_objective)).least_images()
        return ImageFloor(training, max(given(self.rating_batch_size), holdout))


__all__ = ["Plan", "TwoStage", "TwoStageConfig", "TwoStageSettings"]

"""Aging evolution (REA) over a label-free rating, or exhaustive rating of a small space.

Real et al., "Regularized Evolution for Image Classifier Architecture Search", AAAI
2019 (REA), with the label-free rating of `ssnas.strategies.raters` in place of the
trained accuracy:

1. `population` architectures drawn uniformly (within the budget, connected cells);
2. each cycle: `sample_size` members drawn from the population, the best by the
   rating is mutated (one decision changed), the child is rated and joins the
   population, the oldest member leaves;
3. stop after `ratings` distinct architectures are rated; the best rated is kept.

`islands` > 1 runs that many independent aging evolutions in turn (a cycle each), their own
populations and random streams, one rating log: the pick is the best of everything rated
(restarts pooled; island 0 is the single evolution's stream, so islands=1 is plain REA).

Time budget (`time_budget` minutes, counted from the run's start, `SearchTask.started`): once the
initial populations are rated, their seconds per rating fix the plan, the number of ratings
that fit (`Plan`), saved in `evolution.json` with the ratings; the search then rates up to the
plan, and stops early only if the deadline comes first (a machine busier than at the start;
`stopped_at_deadline` in the result). A resumed run keeps the saved plan, so it ends with the
same result as one never killed; a run killed before the plan was saved times it again. The
best architecture so far is in `best.json` at every checkpoint (anytime), and
`evolution.json` holds the best-so-far trace against elapsed time.

When the space (after the budget) holds no more than `ratings` architectures, every
one is rated instead ("exhaustive"). Rank-based ratings are recombined over all
architectures rated so far at each comparison, so scores stay comparable as the
search goes on.

Every rating is saved in `out_dir/evolution.json` (atomically, every
`checkpoint_every` ratings); the run is deterministic (per-cycle RNGs derived from
the seed, networks initialised from the seed), so a resumed run replays the same
proposals, reuses the saved ratings and ends with the same result as one that was
never killed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ssnas.errors import UserError
from ssnas.rating.aggregate import fractional_ranks
from ssnas.rating.defaults import search_defaults
from ssnas.atomic import write_atomic
from ssnas.runfolder import corrupt, read_json
from ssnas.spaces import Architecture, SearchSpace, SupportsEnumerate, is_degenerate
from ssnas.strategies import STRATEGIES
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask, Strategy
from ssnas.strategies.settings import (
    FINISH_SECONDS, FULL_NETWORK, STANDALONE_SIZED, ImageFloor, Settings, fill, given, named_network, settings_for, sized,
    standalone_network,
)  # fmt: skip
from ssnas.spaces.budget import Constraint, mutate
from ssnas.strategies.raters import Columns, Rater, create_rater, rating_for
from ssnas.training.progress import StageProgress, format_duration

log = logging.getLogger(__name__)

STATE_FILE = "evolution.json"
BEST_FILE = "best.json"
SAFETY = 0.92  # share of the time left the plan fills: later candidates rate slower than the first
UNLIMITED = 1_000_000  # the rating cap of a time-budgeted search without --ratings
FINAL_SLOWER = 1.6  # the final rating's networks are the search's best, larger than the average (measured 15 s for 20)
EXHAUSTIVE_UNDER_BUDGET = 100  # ... which rates every architecture of a space no larger than this

# The default plan where it was measured: (minutes of the whole run, independent evolutions pooled,
# the shortlist rated again under two more seeds at the end). nb201: 4 islands and the final rating
# of the best 10 chosen on development seeds 0-4 (at 493 ratings, about 4 minutes: one evolution
# 93.89, four islands 93.94, four islands with the final rating 94.03;
# benchmarks/results/budget_curve_nb201_dev.json); the budget by the held-out curve (seeds 5-14,
# benchmarks/results/budget_curve_nb201.json) by the rule, the shortest budget whose mean is within
# 0.05 of the 15-minute one: 2 minutes, 93.93 (worst 93.65); more time finds no better cell (3 minutes
# 94.07, 5 minutes 94.02, 10 minutes 93.94, 15 minutes 93.83).
# Elsewhere, and with --ratings: a fixed number of ratings (EvolutionConfig's), one evolution.
EVOLUTION_PLANS: dict[str, tuple[float, int, int]] = {"nb201": (2.0, 4, 10)}


@dataclass(frozen=True)
class EvolutionConfig:
    """REA settings.

    ratings: distinct architectures rated (the search's cost); with `time_budget`, at most this
        many (None: as many as the time allows).
    time_budget: minutes the whole run may take (None: `ratings` decides).
    islands: independent aging evolutions run in turn, pooled at the end.
    final_shortlist / final_seeds: the best `final_shortlist` of everything rated are rated again
        under `final_seeds` more seeds (other initial weights, another image batch) and the pick is
        the best mean rank over all seeds (0: off).
    population / sample_size: REA's P and S (the NB201 paper's REA: P=10, S=3); S None = P/4.
    ranker: a ranker expression of `ssnas.rating` ("az-nas-ssl", "meco+synflow", ...); None = the
        space's search default (`ssnas.rating.defaults.search_defaults`), measured on the
        development half.
    rating_batch_size: held-out images per rated network.
    exhaustive: rate every architecture when the space (within the budget) has no more than `ratings`.
    skip_degenerate: never propose cells whose input does not reach the output (NB201 `none` paths).
    """

    ratings: int | None = 100  # measured on NB201 (benchmarks/bench_search.py): about 1-5 min on a 2-core CPU
    time_budget: float | None = None
    islands: int = 1
    final_shortlist: int = 0
    final_seeds: int = 2
    population: int = 20
    sample_size: int | None = None
    ranker: str | None = None
    rating_batch_size: int | None = None  # None = the space's search default
    exhaustive: bool = True
    skip_degenerate: bool = True
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        if self.ranker is not None and not isinstance(self.ranker, str):  # a sequence of names joined by '+'
            object.__setattr__(self, "ranker", "+".join(self.ranker))
        if self.ratings is None and self.time_budget is None:
            raise UserError("evolution needs --ratings or --time-budget")
        if (self.ratings or 1) < 1 or self.population < 1 or not 1 <= self.tournament <= self.population:
            raise UserError(
                f"evolution needs ratings >= 1, population >= 1 and 1 <= sample_size <= population; "
                f"got {self.ratings}, {self.population}, {self.sample_size}"
            )
        if self.time_budget is not None and not self.time_budget > 0:
            raise UserError(f"--time-budget must be a positive number of minutes, got {self.time_budget}")
        if self.islands < 1:
            raise UserError(f"evolution needs islands >= 1, got {self.islands}")

    @property
    def cap(self) -> int:
        """The most ratings: `ratings`, or no limit under a time budget without it."""
        return self.ratings if self.ratings is not None else UNLIMITED

    @property
    def tournament(self) -> int:
        """S: the given sample size, else a quarter of the population."""
        return self.sample_size if self.sample_size is not None else max(1, round(self.population / 4))

    def rating_for(self, space: str) -> tuple[str, int]:
        """The ranker and rating batch size on `space`: the given ones, else the space's search default."""
        return rating_for(space, self.ranker, self.rating_batch_size)


class RatingLog:
    """Every architecture rated so far, its raw columns in rating order, saved to a JSON file."""

    def __init__(self, space: SearchSpace, rater: Rater, path: Path | None, settings: dict[str, Any], every: int) -> None:
        self.space, self.rater, self.path, self.settings, self.every = space, rater, path, settings, every
        self.saved: dict[str, dict[str, float]] = {}  # from a killed run, reused as they come up again
        self.order: list[Architecture] = []
        self.values: dict[Architecture, dict[str, float]] = {}
        self.seconds = 0.0  # spent rating in this process
        self.computed = 0  # ratings computed (not reused) in this process
        self.plan: Plan | None = None  # a time budget's plan, once fixed (saved with the ratings)
        self.trace: list[tuple[int, float, str]] = []  # (rated, elapsed seconds, best key) when the best changed
        self.clock = time.monotonic()  # elapsed time counts from here, plus what earlier processes spent
        self.earlier_seconds = 0.0  # elapsed seconds of the killed run at its last save
        self.logged = 0  # the trace entry last written to the log (its rating count)
        self._scores: dict[Architecture, float] | None = None
        self.progress: StageProgress | None = None  # set while a search runs: one line per `EVERY_SECONDS`

    def load(self) -> int:
        """Saved ratings of an earlier run with the same settings; returns how many."""
        if self.path is None or not self.path.exists():
            return 0
        payload = read_json(self.path)
        if not isinstance(payload, dict):
            raise corrupt(self.path, "not a JSON object")
        if payload.get("settings") != self.settings:
            raise UserError(f"{self.path} was written by a search with other settings; use a new --out")
        try:
            self.saved = {str(key): {str(n): float(v) for n, v in values.items()} for key, values in payload["ratings"]}
            plan = payload.get("plan")
            self.plan = Plan(**plan) if plan is not None else None
            self.earlier_seconds = float(payload.get("elapsed_seconds", 0.0))
            self.trace = [(int(n), float(t), str(k)) for n, t, k in payload.get("trace", [])]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise corrupt(self.path, "its ratings are not [architecture, {signal: value}] pairs") from None
        return len(self.saved)

    def elapsed(self) -> float:
        """Seconds of search so far, the killed runs' included."""
        return self.earlier_seconds + time.monotonic() - self.clock

    def best(self) -> Architecture:
        scores = self.scores()
        return max(self.order, key=scores.__getitem__)

    def rate(self, archs: Sequence[Architecture]) -> None:
        """Rate the architectures not rated yet (saved values first), in order."""
        fresh = [a for a in dict.fromkeys(archs) if a not in self.values]
        todo = [a for a in fresh if a.key not in self.saved]
        computed: dict[Architecture, dict[str, float]] = {}
        if todo:
            started = time.perf_counter()
            columns = self.rater.columns(todo)
            self.seconds += time.perf_counter() - started
            self.computed += len(todo)
            computed = {a: {n: float(columns[n][i]) for n in columns} for i, a in enumerate(todo)}
        for arch in fresh:
            self.values[arch] = computed[arch] if arch in computed else self.saved[arch.key]
            self.order.append(arch)
            self._scores = None
            self._follow_best()
            if todo and len(self.order) % self.every == 0:
                self.save()
        if self.progress is not None and fresh:
            done = len(self.order)
            self.progress.update(done, status=f"best so far {self.best().key}",
                                 force_line=done >= self.progress.total)  # fmt: skip

    def _follow_best(self) -> None:
        """Add a trace entry when the best architecture changed (replayed entries keep their saved times)."""
        key, rated = self.best().key, len(self.order)
        if self.trace and self.trace[-1][0] >= rated:  # replaying a resumed run: the saved trace holds it
            return
        if not self.trace or self.trace[-1][2] != key:
            self.trace.append((rated, round(self.elapsed(), 3), key))

    def scores(self) -> dict[Architecture, float]:
        """Combined score of every rated architecture, over the whole log (cached until the next rating)."""
        if self._scores is None:
            names = list(self.values[self.order[0]]) if self.order else []
            columns: Columns = {n: [self.values[a][n] for a in self.order] for n in names}
            combined = self.rater.combine(columns) if self.order else []
            self._scores = dict(zip(self.order, combined))
        return self._scores

    def save(self) -> None:
        """evolution.json (ratings, plan, trace) and best.json, each written atomically."""
        if self.path is None:
            return
        elapsed = max(self.elapsed(), self.trace[-1][1] if self.trace else 0.0)
        payload = {"settings": self.settings, "ratings": [[a.key, self.values[a]] for a in self.order],
                   "plan": asdict(self.plan) if self.plan is not None else None, "elapsed_seconds": elapsed,
                   "trace": self.trace}  # fmt: skip
        write_atomic(self.path, json.dumps(payload))
        if self.trace and self.trace[-1][0] > self.logged:  # search.log: the best so far against elapsed time
            rated, seconds, key = self.trace[-1]
            log.info("best so far %s after %d ratings, %s", key, rated, format_duration(seconds))
            self.logged = rated
        if self.order:
            best = self.best()
            self.write_best(best, self.scores()[best], final=False)

    def write_best(self, arch: Architecture, score: float, final: bool) -> None:
        """best.json: the best so far (`final`: the search's pick, after the final rating)."""
        if self.path is None:
            return
        write_atomic(self.path.with_name(BEST_FILE), json.dumps(
            {"arch": arch.key, "score": score, "rated": len(self.order), "elapsed_seconds": self.elapsed(),
             "final": final}, indent=1))  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """A time budget's plan, fixed once the initial populations are rated.

    ratings: distinct architectures to rate in all; seconds_per_rating: measured on the
    `calibrated_on` ratings computed before it; deadline_seconds: elapsed seconds at which
    rating stops whatever the plan (the budget less the time kept for writing the results).
    """

    ratings: int
    seconds_per_rating: float
    calibrated_on: int
    deadline_seconds: float



def _as_saved(config: dict[str, Any]) -> dict[str, Any]:
    """The settings as evolution.json has always saved them (the ranker under "rating"; no time
    budget or islands when they are unset), so a search started by an older ssnas resumes."""
    unset = {"time_budget": None, "islands": 1, "final_shortlist": 0, "final_seeds": 2}
    return {("rating" if key == "ranker" else key): value for key, value in config.items()
            if not (key in unset and value == unset[key])}  # fmt: skip


@STRATEGIES.register("evolution")
class Evolution:
    """Aging evolution (REA) over a label-free rating; exhaustive rating when the space is small."""

    def __init__(self, config: EvolutionConfig | None = None, rater: Rater | None = None, **overrides: Any) -> None:
        self.config = EvolutionConfig(**{**asdict(config or EvolutionConfig()), **overrides})
        self.rater = rater

    def search(self, task: SearchTask) -> SearchResult:
        cfg, space = self.config, task.space
        ranker, batch_size = cfg.rating_for(space.name)
        rater = self.rater or create_rater(task, ranker, batch_size)
        if task.budget is not None:
            task.budget.check_feasible(random.Random(task.seed))
        settings = {**_as_saved(asdict(cfg)), "rating": rater.name, "rating_batch_size": batch_size,
                    "seed": task.seed, "space": space.name}
        path = task.out_dir / STATE_FILE if task.out_dir is not None else None
        ratings = RatingLog(space, rater, path, settings, cfg.checkpoint_every)
        ratings.clock = task.started if task.started is not None else time.monotonic()
        if task.resume:
            log.info("evolution: %d saved ratings reused", ratings.load())
        elif path is not None and path.exists():
            raise UserError(f"{path} exists; resume the search or choose a new --out")
        pool = self._small_pool(space, task.budget)
        mode = "exhaustive" if pool is not None else "evolution"
        if pool is not None or cfg.time_budget is None:
            planned = f"{len(pool) if pool is not None else cfg.cap} ratings"
        else:
            planned = f"a {cfg.time_budget:g}-minute budget" + (f" (at most {cfg.ratings} ratings)" if cfg.ratings else "")
        log.info("%s over %s with rating %s, %d island(s), %s", mode, space.name, rater.name, cfg.islands, planned)
        total = len(pool) if pool is not None else min(cfg.cap, ratings.plan.ratings if ratings.plan else cfg.cap)
        with StageProgress(mode, total, unit="architectures rated", bar=task.train.progress) as progress:
            ratings.progress = progress
            if pool is not None:
                ratings.rate(pool)
                stopped = False
            else:
                stopped = self._evolve(task, ratings)
            ratings.progress = None
        ratings.save()
        scores = ratings.scores()
        position = {a: i for i, a in enumerate(ratings.order)}
        ranked = sorted(ratings.order, key=lambda a: scores[a], reverse=True)
        final: dict[Architecture, float] = {}
        if cfg.final_shortlist > 1 and pool is None and (self.rater is None or cfg.final_seeds == 0):
            final = self._final_rating(task, rater, ranked[: cfg.final_shortlist], batch_size)
            ranked = sorted(final, key=lambda a: final[a], reverse=True) + ranked[len(final):]
        candidates = [ScoredArch(a, scores[a], {**ratings.values[a], "order": float(position[a]),
                                                **({"final_rank_score": final[a]} if a in final else {})})
                      for a in ranked]  # fmt: skip
        ratings.write_best(ranked[0], scores[ranked[0]], final=True)
        info = {
            "mode": mode, "rating": rater.name, "rated": len(ratings.order),
            "rating_seconds": ratings.seconds,
            "seconds_per_rating": ratings.seconds / max(1, len(ratings.order) - len(ratings.saved)),
            "population": cfg.population, "sample_size": cfg.tournament, "islands": cfg.islands,
            "nonfinite": dict(getattr(rater, "nonfinite", {})), "elapsed_seconds": ratings.elapsed(),
            "best_so_far": [{"rated": n, "elapsed_seconds": t, "arch": k} for n, t, k in ratings.trace],
        }  # fmt: skip
        if ratings.plan is not None:
            info.update(time_budget_minutes=cfg.time_budget, plan=asdict(ratings.plan), stopped_at_deadline=stopped)
        return SearchResult(best=candidates[0], candidates=candidates, info=info)

    def _final_ratings(self) -> int:
        """Ratings the final rating of the shortlist makes (0 when off)."""
        cfg = self.config
        return cfg.final_shortlist * cfg.final_seeds if cfg.final_shortlist > 1 else 0

    def _final_rating(self, task: SearchTask, rater: Rater, shortlist: list[Architecture],
                      batch_size: int) -> dict[Architecture, float]:  # fmt: skip
        """The shortlist's score over the search's seed and `final_seeds` more: per seed, the ranker's
        combination within the shortlist, as ranks; the mean of those ranks (higher is better)."""
        seeds = [task.seed, *(task.seed + 1000 * k for k in range(1, self.config.final_seeds + 1))]
        started = time.perf_counter()
        ranks = np.zeros(len(shortlist))
        for seed in seeds:
            seeded_rater = rater if seed == task.seed else create_rater(replace(task, seed=seed), rater.name, batch_size)
            combined = seeded_rater.combine(seeded_rater.columns(shortlist))
            ranks += fractional_ranks(combined)
        log.info("final rating: the best %d rated again under %d more seeds (%.0f s)", len(shortlist),
                 len(seeds) - 1, time.perf_counter() - started)  # fmt: skip
        return {a: float(r) / len(seeds) for a, r in zip(shortlist, ranks)}

    def _accept(self, space: SearchSpace) -> Any:
        if not self.config.skip_degenerate:
            return lambda arch: True
        return lambda arch: not is_degenerate(space, arch)

    def _small_pool(self, space: SearchSpace, budget: Constraint | None) -> list[Architecture] | None:
        """Every admissible architecture, when there are no more than `ratings` of them (a time budget
        without --ratings: the default 100); else None."""
        limit = self.config.ratings if self.config.ratings is not None else EXHAUSTIVE_UNDER_BUDGET
        if not self.config.exhaustive or not isinstance(space, SupportsEnumerate):
            return None
        accept = self._accept(space)
        if budget is not None:
            listed = budget.feasible_static()
            if listed is None:
                return None
            pool = [a for a in listed if accept(a)]
            if len(pool) > limit:
                return None
            return [a for a in pool if budget.admits(a)]
        if space.size() > 20 * limit:  # do not list a space far too large to rate
            return None
        pool = [a for a in space.enumerate() if accept(a)]
        return pool if len(pool) <= limit else None

    def _evolve(self, task: SearchTask, ratings: RatingLog) -> bool:
        """Run the islands in turn up to the plan; True when the deadline stopped them first."""
        cfg, space, budget = self.config, task.space, task.budget
        accept = self._accept(space)

        def propose_random(rng: random.Random) -> Architecture:
            if budget is not None:
                return budget.sample(rng, accept)
            for _ in range(10_000):
                arch = space.sample(rng)
                if accept(arch):
                    return arch
            raise UserError(f"no admissible {space.name} architecture found in 10,000 draws")

        def propose_child(parent: Architecture, rng: random.Random) -> Architecture:
            if budget is not None:
                return budget.mutate(parent, rng, accept)
            for _ in range(200):
                child = mutate(space, parent, rng)
                if accept(child):
                    return child
            return propose_random(rng)

        populations: list[deque[Architecture]] = []
        for island in range(cfg.islands):
            start = random.Random(_stream(task.seed, island, "population"))
            populations.append(deque(propose_random(start) for _ in range(cfg.population)))
            ratings.rate(list(populations[-1]))
        started = task.started if task.started is not None else ratings.clock
        deadline = self._fix_plan(ratings, started)
        target = min(cfg.cap, ratings.plan.ratings) if ratings.plan is not None else cfg.cap
        if ratings.progress is not None:
            ratings.progress.retotal(target)
        cycles = [0] * cfg.islands
        while len(ratings.order) < target and sum(cycles) < 20 * target:
            if deadline is not None and time.monotonic() > deadline:
                log.warning("time budget: stopped at the deadline after %d of %d planned ratings (a busier machine "
                            "than when the plan was made)", len(ratings.order), target)  # fmt: skip
                return True
            island = sum(cycles) % cfg.islands
            rng = random.Random(_stream(task.seed, island, str(cycles[island])))
            population = populations[island]
            scores = ratings.scores()
            contenders = rng.sample(list(population), cfg.tournament)
            parent = max(contenders, key=lambda a: scores[a])
            child = propose_child(parent, rng)
            ratings.rate([child])
            population.append(child)
            population.popleft()
            cycles[island] += 1
        return False

    def _fix_plan(self, ratings: RatingLog, started: float) -> float | None:
        """Under a time budget, the plan (saved, or made from the ratings computed so far) and the
        deadline on this process's clock (`time.monotonic()`); None without a budget."""
        cfg = self.config
        if cfg.time_budget is None:
            return None
        budget_seconds = cfg.time_budget * 60.0
        if ratings.plan is None:
            per_rating = max(ratings.seconds, 1e-3) / max(1, ratings.computed)
            spent = time.monotonic() - started
            planned = planned_ratings(budget_seconds, spent, len(ratings.order), per_rating, self._final_ratings())
            ratings.plan = Plan(ratings=min(cfg.cap, planned), seconds_per_rating=round(per_rating, 4),
                                calibrated_on=ratings.computed, deadline_seconds=budget_seconds - FINISH_SECONDS)  # fmt: skip
            ratings.save()
            log.info("time budget %s: %s spent, %.2f s per rating over %d ratings: %d ratings planned",
                     format_duration(budget_seconds), format_duration(spent), per_rating, ratings.computed,
                     ratings.plan.ratings)  # fmt: skip
        return started + ratings.plan.deadline_seconds


def planned_ratings(budget_seconds: float, spent: float, rated: int, per_rating: float, final_ratings: int) -> int:
    """The ratings a time budget's plan makes: `rated` so far (after `spent` seconds), plus what fits in the time
    left at `per_rating` seconds each, less the results' time (`FINISH_SECONDS`) and the final rating's
    (`final_ratings`, each `FINAL_SLOWER` times a search rating), filled to `SAFETY`."""
    left = budget_seconds - FINISH_SECONDS - spent - final_ratings * per_rating * FINAL_SLOWER
    return rated + max(0, math.floor(left * SAFETY / per_rating))


def _stream(seed: int, island: int, name: str) -> str:
    """The name of an island's random stream (island 0: the single evolution's, as before islands)."""
    return f"evolution:{seed}:{name}" if island == 0 else f"evolution:{seed}:island{island}:{name}"


@settings_for("evolution")
@dataclass(frozen=True)
class EvolutionSettings(Settings):
    """Aging evolution over a label-free rating at initialisation (`EvolutionConfig`); trains nothing.

    ranker: ranker expression ("az-nas-ssl", "meco+synflow", ...) [the space's search default].
    ratings: architectures rated; with time_budget, at most this many [100 without a time budget].
    time_budget: minutes the whole run may take; the ratings that fit are planned at the start
        [`EVOLUTION_PLANS` of the space unless --ratings is given; elsewhere none].
    islands: independent evolutions run in turn and pooled [the space's plan under a time budget, else 1].
    final_shortlist: the best this many of all rated are rated again under two more seeds and the
        pick is their best mean rank [the space's plan under a time budget, else 0: off].
    rating_batch_size: held-out images per rated network [the space's search default].
    channels / cells: the rated network's size [nb201: C=16, N=5; darts: 32, 8].
    """

    bf16_keeps_quality: ClassVar[bool] = True  # trains nothing

    ranker: str | None = None
    ratings: int | None = None
    time_budget: float | None = None
    islands: int | None = None
    final_shortlist: int | None = None
    population: int | None = None
    rating_batch_size: int | None = None
    channels: int | None = None
    cells: int | None = None

    def options(self, space: str) -> tuple[str, ...]:
        return ("ranker", "ratings", "time_budget", "islands", "final_shortlist", "population", "rating_batch_size",
                *sized(space, STANDALONE_SIZED))  # fmt: skip

    def resolve(self, space: str, preset: str) -> EvolutionSettings:
        return self.resolved(space, EVOLUTION_PLANS.get(space))

    def resolved(self, space: str, plan: tuple[float, int, int] | None) -> EvolutionSettings:
        """Every used option filled; `plan` (minutes, islands, final shortlist) applies when neither a time budget nor
        a number of ratings was given (None: a fixed number of ratings)."""
        base = EvolutionConfig()
        ranker, batch_size = rating_for(space, None, None)
        network = {**FULL_NETWORK.get(space, {}), **named_network(search_defaults(space).network)}
        defaults = dict(ranker=ranker, rating_batch_size=batch_size, islands=base.islands,
                        final_shortlist=base.final_shortlist, population=base.population, **network)  # fmt: skip
        minutes, islands, final = plan or (None, base.islands, base.final_shortlist)
        budget = self.time_budget if self.time_budget is not None or self.ratings is not None else minutes
        if budget is None:  # a time budget plans the ratings itself; --ratings caps them
            defaults["ratings"] = base.ratings
        else:
            defaults.update(time_budget=budget, islands=islands, final_shortlist=final)
        return fill(self, self.options(space), defaults)

    def network(self, space: str) -> dict[str, int]:
        return standalone_network(space, self.channels, self.cells)

    def create(self, name: str, space: str, preset: str) -> Strategy:
        return Evolution(self.evolution_config())

    def evolution_config(self) -> EvolutionConfig:
        return EvolutionConfig(ratings=self.ratings, time_budget=self.time_budget, islands=given(self.islands),
                               final_shortlist=given(self.final_shortlist), population=given(self.population),
                               ranker=self.ranker, rating_batch_size=self.rating_batch_size)  # fmt: skip

    def scored_by(self) -> str:
        return f"the label-free rating {self.ranker} at initialisation"

    def image_floor(self, space: str) -> ImageFloor:
        return ImageFloor(0, given(self.rating_batch_size))  # trains nothing; rates on one held-out batch


EVOLUTION_OPTIONS = ("ranker", "ratings", "islands", "final_shortlist", "population", "rating_batch_size", "channels",
                     "cells")  # fmt: skip

__all__ = [
    "EVOLUTION_OPTIONS", "EVOLUTION_PLANS", "Evolution", "EvolutionConfig", "EvolutionSettings", "Plan", "RatingLog",
    "planned_ratings",
]

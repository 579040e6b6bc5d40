"""Aging evolution (REA) over a label-free rating, or exhaustive rating of a small space.

Real et al., "Regularized Evolution for Image Classifier Architecture Search", AAAI
2019 (REA), with the label-free rating of `ssnas.strategies.raters` in place of the
trained accuracy:

1. `population` architectures drawn uniformly (within the budget, connected cells);
2. each cycle: `sample_size` members drawn from the population, the best by the
   rating is mutated (one decision changed), the child is rated and joins the
   population, the oldest member leaves;
3. stop after `ratings` distinct architectures are rated; the best rated is kept.

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
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ssnas.errors import UserError
from ssnas.rating.defaults import search_defaults
from ssnas.atomic import write_atomic
from ssnas.runfolder import corrupt, read_json
from ssnas.spaces import Architecture, SearchSpace, SupportsEnumerate, is_degenerate
from ssnas.strategies import STRATEGIES
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask
from ssnas.spaces.budget import Constraint, mutate
from ssnas.strategies.raters import Columns, Rater, create_rater
from ssnas.training.progress import StageProgress

log = logging.getLogger(__name__)

STATE_FILE = "evolution.json"


@dataclass(frozen=True)
class EvolutionConfig:
    """REA settings.

    ratings: distinct architectures rated (the search's cost).
    population / sample_size: REA's P and S (the NB201 paper's REA: P=10, S=3); S None = P/4.
    ranker: a ranker expression of `ssnas.rating` ("az-nas-ssl", "meco+synflow", ...); None = the
        space's search default (`ssnas.rating.defaults.search_defaults`), measured on the
        development half.
    rating_batch_size: held-out images per rated network.
    exhaustive: rate every architecture when the space (within the budget) has no more than `ratings`.
    skip_degenerate: never propose cells whose input does not reach the output (NB201 `none` paths).
    """

    ratings: int = 100  # measured on NB201 (benchmarks/bench_search.py): about 1-5 min on a 2-core CPU
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
        if self.ratings < 1 or self.population < 1 or not 1 <= self.tournament <= self.population:
            raise UserError(
                f"evolution needs ratings >= 1, population >= 1 and 1 <= sample_size <= population; "
                f"got {self.ratings}, {self.population}, {self.sample_size}"
            )

    @property
    def tournament(self) -> int:
        """S: the given sample size, else a quarter of the population."""
        return self.sample_size if self.sample_size is not None else max(1, round(self.population / 4))


class RatingLog:
    """Every architecture rated so far, its raw columns in rating order, saved to a JSON file."""

    def __init__(self, space: SearchSpace, rater: Rater, path: Path | None, settings: dict[str, Any], every: int) -> None:
        self.space, self.rater, self.path, self.settings, self.every = space, rater, path, settings, every
        self.saved: dict[str, dict[str, float]] = {}  # from a killed run, reused as they come up again
        self.order: list[Architecture] = []
        self.values: dict[Architecture, dict[str, float]] = {}
        self.seconds = 0.0
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
        except (KeyError, TypeError, ValueError, AttributeError):
            raise corrupt(self.path, "its ratings are not [architecture, {signal: value}] pairs") from None
        return len(self.saved)

    def rate(self, archs: Sequence[Architecture]) -> None:
        """Rate the architectures not rated yet (saved values first), in order."""
        fresh = [a for a in dict.fromkeys(archs) if a not in self.values]
        todo = [a for a in fresh if a.key not in self.saved]
        computed: dict[Architecture, dict[str, float]] = {}
        if todo:
            started = time.perf_counter()
            columns = self.rater.columns(todo)
            self.seconds += time.perf_counter() - started
            computed = {a: {n: float(columns[n][i]) for n in columns} for i, a in enumerate(todo)}
        for arch in fresh:
            self.values[arch] = computed[arch] if arch in computed else self.saved[arch.key]
            self.order.append(arch)
            self._scores = None
            if todo and len(self.order) % self.every == 0:
                self.save()
        if self.progress is not None and fresh:
            done = len(self.order)
            scores = self.scores()
            self.progress.update(done, status=f"best so far {max(scores, key=scores.__getitem__).key}",
                                 force_line=done >= self.progress.total)  # fmt: skip

    def scores(self) -> dict[Architecture, float]:
        """Combined score of every rated architecture, over the whole log (cached until the next rating)."""
        if self._scores is None:
            names = list(self.values[self.order[0]]) if self.order else []
            columns: Columns = {n: [self.values[a][n] for a in self.order] for n in names}
            combined = self.rater.combine(columns) if self.order else []
            self._scores = dict(zip(self.order, combined))
        return self._scores

    def save(self) -> None:
        if self.path is None:
            return
        payload = {"settings": self.settings, "ratings": [[a.key, self.values[a]] for a in self.order]}
        write_atomic(self.path, json.dumps(payload))



def _as_saved(config: dict[str, Any]) -> dict[str, Any]:
    """The settings as evolution.json has always saved them (the ranker under "rating"), so a
    search started by an older ssnas resumes."""
    return {("rating" if key == "ranker" else key): value for key, value in config.items()}


@STRATEGIES.register("evolution")
class Evolution:
    """Aging evolution (REA) over a label-free rating; exhaustive rating when the space is small."""

    def __init__(self, config: EvolutionConfig | None = None, rater: Rater | None = None, **overrides: Any) -> None:
        self.config = EvolutionConfig(**{**asdict(config or EvolutionConfig()), **overrides})
        self.rater = rater

    def search(self, task: SearchTask) -> SearchResult:
        cfg, space = self.config, task.space
        defaults = search_defaults(space.name)
        batch_size = cfg.rating_batch_size or defaults.batch_size
        rater = self.rater or create_rater(task, cfg.ranker or defaults.ranker, batch_size)
        if task.budget is not None:
            task.budget.check_feasible(random.Random(task.seed))
        settings = {**_as_saved(asdict(cfg)), "rating": rater.name, "rating_batch_size": batch_size,
                    "seed": task.seed, "space": space.name}
        path = task.out_dir / STATE_FILE if task.out_dir is not None else None
        ratings = RatingLog(space, rater, path, settings, cfg.checkpoint_every)
        if task.resume:
            log.info("evolution: %d saved ratings reused", ratings.load())
        elif path is not None and path.exists():
            raise UserError(f"{path} exists; resume the search or choose a new --out")
        pool = self._small_pool(space, task.budget)
        mode = "exhaustive" if pool is not None else "evolution"
        log.info("%s over %s with rating %s, %d ratings", mode, space.name, rater.name,
                 len(pool) if pool is not None else cfg.ratings)  # fmt: skip
        total = len(pool) if pool is not None else cfg.ratings
        with StageProgress(mode, total, unit="architectures rated", bar=task.train.progress) as progress:
            ratings.progress = progress
            if pool is not None:
                ratings.rate(pool)
            else:
                self._evolve(task, ratings)
            ratings.progress = None
        ratings.save()
        scores = ratings.scores()
        position = {a: i for i, a in enumerate(ratings.order)}
        ranked = sorted(ratings.order, key=lambda a: scores[a], reverse=True)
        candidates = [ScoredArch(a, scores[a], {**ratings.values[a], "order": float(position[a])}) for a in ranked]
        info = {
            "mode": mode, "rating": rater.name, "rated": len(ratings.order),
            "rating_seconds": ratings.seconds,
            "seconds_per_rating": ratings.seconds / max(1, len(ratings.order) - len(ratings.saved)),
            "population": cfg.population, "sample_size": cfg.tournament, "nonfinite": dict(getattr(rater, "nonfinite", {})),
        }  # fmt: skip
        return SearchResult(best=candidates[0], candidates=candidates, info=info)

    def _accept(self, space: SearchSpace) -> Any:
        if not self.config.skip_degenerate:
            return lambda arch: True
        return lambda arch: not is_degenerate(space, arch)

    def _small_pool(self, space: SearchSpace, budget: Constraint | None) -> list[Architecture] | None:
        """Every admissible architecture, when there are no more than `ratings` of them; else None."""
        if not self.config.exhaustive or not isinstance(space, SupportsEnumerate):
            return None
        accept = self._accept(space)
        if budget is not None:
            listed = budget.feasible_static()
            if listed is None:
                return None
            pool = [a for a in listed if accept(a)]
            if len(pool) > self.config.ratings:
                return None
            return [a for a in pool if budget.admits(a)]
        if space.size() > 20 * self.config.ratings:  # do not list a space far too large to rate
            return None
        pool = [a for a in space.enumerate() if accept(a)]
        return pool if len(pool) <= self.config.ratings else None

    def _evolve(self, task: SearchTask, ratings: RatingLog) -> None:
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

        start = random.Random(f"evolution:{task.seed}:population")
        population: deque[Architecture] = deque(propose_random(start) for _ in range(cfg.population))
        ratings.rate(list(population))
        cycle = 0
        while len(ratings.order) < cfg.ratings and cycle < 20 * cfg.ratings:
            rng = random.Random(f"evolution:{task.seed}:{cycle}")
            scores = ratings.scores()
            contenders = rng.sample(list(population), cfg.tournament)
            parent = max(contenders, key=lambda a: scores[a])
            child = propose_child(parent, rng)
            ratings.rate([child])
            population.append(child)
            population.popleft()
            cycle += 1


__all__ = ["Evolution", "EvolutionConfig", "RatingLog"]

"""A search's run folder read back: what `report.html` and `compare.html` show, from the files alone.

A run folder holds `config.yaml` (the settings exactly as run), `result.json` (the pick, the
strategy's info, the ground truth of the pick) and `candidates.csv` (every rated candidate, best
first, with its signals and ground truth). The order candidates were rated in is the `order`
column (evolution, and stage 1 of two-stage), the `trial` column (tpe / random) or
`evolution.json`; SETN and BossNAS rate their candidates together and record none.

>>> record = load_run(Path("runs/search"))                    # doctest: +SKIP
>>> record.best.arch, record.truth_metric, record.rating_order()  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ssnas.errors import UserError

CONFIG_FILE = "config.yaml"
RESULT_FILE = "result.json"
CANDIDATES_FILE = "candidates.csv"
EVOLUTION_FILE = "evolution.json"
REQUIRED = (CONFIG_FILE, RESULT_FILE, CANDIDATES_FILE)
RANK_SCORES_FILE = "scores.csv"
# The ground-truth column a report correlates with, first one present (`ssnas rank --metric`'s default first).
TRUTH_METRICS = ("cifar10_valid", "cifar10_test", "cifar100_test", "cifar100_acc", "imagenet16_test", "imagenet16_acc")
ORDER_COLUMNS = ("order", "trial")  # evolution's rating position, Optuna's trial number


@dataclass(frozen=True)
class Candidate:
    """One rated architecture: `arch` its string, `score` higher = better, `signals` the values
    behind the score (candidates.csv's other columns), `truth` benchmark metrics where known.

    >>> best = ssnas.search("cifar10-jpeg").best          # doctest: +SKIP
    >>> best.arch, best.score, best.truth["cifar10_test"]  # doctest: +SKIP
    """

    arch: str
    score: float
    signals: dict[str, float] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Everything a report needs from one run folder (see `load_run`)."""

    folder: Path
    settings: dict[str, Any]  # config.yaml, key order kept
    result: dict[str, Any]  # result.json
    candidates: list[Candidate]  # best first, as in candidates.csv
    evolution_order: list[str] | None = None  # keys in rating order, from evolution.json

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    @property
    def space(self) -> str:
        return str(self.result.get("space") or self.settings.get("space"))

    @property
    def strategy(self) -> str:
        return str(self.result.get("strategy") or self.settings.get("strategy"))

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.result.get("info") or {})

    @property
    def best(self) -> Candidate:
        """The pick: result.json's best, found among the candidates."""
        arch = self.result["best"]["arch"]
        return next((c for c in self.candidates if c.arch == arch), self.candidates[0])

    @property
    def ground_truth(self) -> dict[str, float]:
        """The pick's benchmark metrics ({} when no table is known for the run)."""
        return {k: float(v) for k, v in (self.result.get("ground_truth") or {}).items()}

    @property
    def truth_metric(self) -> str | None:
        """The ground-truth metric the report correlates with; None without ground truth."""
        known = {name for c in self.candidates for name in c.truth}
        return next((m for m in TRUTH_METRICS if m in known), None)

    @property
    def seconds(self) -> float:
        """Wall time of the search (two-stage: of the whole run, as it counts its time budget)."""
        return float(self.info.get("run_seconds", self.result.get("seconds", 0.0)))

    @property
    def stage1_scores(self) -> bool:
        """Whether the candidates carry a stage-1 score beside the final one (two-stage)."""
        return all("stage1_score" in c.signals for c in self.candidates)

    @cached_property
    def _by_key(self) -> dict[str, Candidate]:
        return {c.arch: c for c in self.candidates}

    def candidate(self, key: str) -> Candidate | None:
        return self._by_key.get(key)

    def rating_order(self) -> tuple[list[Candidate], str] | None:
        """The candidates in the order they were rated, and where that order comes from; None when
        the strategy records none (SETN, BossNAS rate a population at once)."""
        for column in ORDER_COLUMNS:
            if self.candidates and all(column in c.signals for c in self.candidates):
                ordered = sorted(self.candidates, key=lambda c: c.signals[column])
                return ordered, f"the {column!r} column of {CANDIDATES_FILE}"
        if self.evolution_order:
            rated = [self._by_key[k] for k in self.evolution_order if k in self._by_key]
            return rated, EVOLUTION_FILE
        return None

    def search_score(self, candidate: Candidate) -> float:
        """The score the rating-order search went by: stage 1's for two-stage, else the final score."""
        return candidate.signals["stage1_score"] if self.stage1_scores else candidate.score


def load_run(folder: Path) -> RunRecord:
    """Read a search's run folder; UserError (one line) when it is not one or misses a file."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give the --out folder of a search")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing and (folder / RANK_SCORES_FILE).is_file():
        raise UserError(f"{folder} holds a rank run (scores.csv), not a search; `ssnas rank --out` writes its report")
    if len(missing) == len(REQUIRED):
        raise UserError(f"{folder} is not a run folder (no {', '.join(REQUIRED)}); give the --out folder of a search")
    if missing:
        raise UserError(f"{folder} misses {', '.join(missing)} (the search did not finish?); "
                        "run it again with --resume")  # fmt: skip
    settings = _read(folder / CONFIG_FILE, yaml.safe_load)
    result = _read(folder / RESULT_FILE, json.loads)
    if not isinstance(settings, dict) or not isinstance(result, dict) or "best" not in result:
        raise UserError(f"{folder}: {CONFIG_FILE} or {RESULT_FILE} is not a search's (no settings or no 'best')")
    candidates = read_candidates(folder / CANDIDATES_FILE, list(result.get("ground_truth") or {}))
    if not candidates:
        raise UserError(f"{folder / CANDIDATES_FILE} lists no candidate")
    return RunRecord(folder, settings, result, candidates, _evolution_order(folder / EVOLUTION_FILE))


def read_candidates(path: Path, truth_names: Sequence[str] = ()) -> list[Candidate]:
    """candidates.csv of a run folder, best first; columns in `truth_names` are ground truth, the
    others signals (an empty cell: no value). UserError (one line) for a file that is not one."""

    def parse(text: str) -> list[Candidate]:
        out = []
        for row in csv.DictReader(text.splitlines()):
            values = {k: float(v) for k, v in row.items() if k not in ("rank", "arch", "score") and v not in ("", None)}
            out.append(Candidate(row["arch"], float(row["score"]),
                                 {k: v for k, v in values.items() if k not in truth_names},
                                 {k: v for k, v in values.items() if k in truth_names and math.isfinite(v)}))  # fmt: skip
        return out

    return list(_read(path, parse))


def _read(path: Path, parse: Callable[[str], Any]) -> Any:
    """`parse` of the file's text; UserError naming the file when it cannot be parsed."""
    try:
        return parse(path.read_text())
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        raise UserError(f"{path} cannot be read ({type(error).__name__}: {str(error).splitlines()[0]})") from None


def _evolution_order(path: Path) -> list[str] | None:
    """Keys in rating order from evolution.json (evolution and two-stage's stage 1), else None."""
    if not path.is_file():
        return None
    try:
        return [str(key) for key, _ in json.loads(path.read_text())["ratings"]]
    except (ValueError, KeyError, TypeError):
        return None


__all__ = ["CANDIDATES_FILE", "CONFIG_FILE", "RESULT_FILE", "Candidate", "RunRecord", "load_run", "read_candidates"]

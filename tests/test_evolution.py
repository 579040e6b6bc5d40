"""Aging evolution over a label-free rating: finds what the rating prefers, rates small spaces
exhaustively, skips disconnected cells, and resumes after SIGKILL to the same result."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from cli_helpers import SSNAS, copy_cifar_subset, kill_once_written
from ssnas.spaces import Architecture, create_space
from ssnas.spaces.budget import Budget, Constraint
from ssnas.strategies.base import SearchTask
from ssnas.strategies.evolution import Evolution
from ssnas.strategies.raters import Columns

NB201 = create_space("nb201")
TARGET = NB201.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


class Matches:
    """Rating = decisions equal to a target's (two columns, so the rank combination is exercised)."""

    name = "matches"

    def __init__(self, target: Architecture) -> None:
        self.target, self.calls = target, 0

    def columns(self, archs: Sequence[Architecture]) -> Columns:
        self.calls += len(archs)
        same = [float(sum(a == b for a, b in zip(arch.choices, self.target.choices))) for arch in archs]
        return {"same": same, "same-again": same}

    def combine(self, columns: Columns) -> list[float]:
        return [a + b for a, b in zip(columns["same"], columns["same-again"])]


def task(space: object = NB201, budget: Constraint | None = None, out_dir: Path | None = None, resume: bool = False) -> SearchTask:
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    return SearchTask(space=space, images=images, holdout_images=images, budget=budget, out_dir=out_dir, resume=resume)  # type: ignore[arg-type]


def test_evolution_climbs_to_what_the_rating_prefers() -> None:
    rater = Matches(TARGET)
    result = Evolution(rater=rater, ratings=150, population=20, sample_size=5).search(task())
    assert result.best.arch == TARGET  # 150 of 15,625 cells rated; random search would need ~10,000
    assert rater.calls == len(result.candidates) == 150  # each architecture rated once
    assert result.info["mode"] == "evolution"


def test_no_disconnected_cell_is_proposed() -> None:
    result = Evolution(rater=Matches(TARGET), ratings=60, population=20).search(task())
    assert not any(NB201.is_degenerate(c.arch) for c in result.candidates)


def test_a_small_space_under_a_budget_is_rated_exhaustively() -> None:
    nats = create_space("nats-size")
    constraint = Constraint(nats, Budget(max_flops=6.0))
    feasible = constraint.feasible_static()
    assert feasible is not None and 0 < len(feasible) <= 200
    target = max(feasible, key=constraint.costs.flops)
    result = Evolution(rater=Matches(target), ratings=200).search(task(nats, constraint))
    assert result.info["mode"] == "exhaustive" and len(result.candidates) == len(feasible)
    assert result.best.arch == target


def test_resume_reuses_saved_ratings_and_ends_the_same(tmp_path: Path) -> None:
    reference = Evolution(rater=Matches(TARGET), ratings=80, population=10, checkpoint_every=5).search(task())
    Evolution(rater=Matches(TARGET), ratings=40, population=10, checkpoint_every=5).search(task(out_dir=tmp_path))
    saved = json.loads((tmp_path / "evolution.json").read_text())
    saved["settings"]["ratings"] = 80  # as if the 80-rating run had been killed after 40
    (tmp_path / "evolution.json").write_text(json.dumps(saved))
    rater = Matches(TARGET)
    resumed = Evolution(rater=rater, ratings=80, population=10, checkpoint_every=5).search(task(out_dir=tmp_path, resume=True))
    assert rater.calls == 40  # only the ratings the first run had not made
    assert [c.arch for c in resumed.candidates] == [c.arch for c in reference.candidates]


# --- the real command, killed and resumed -----------------------------------------------------------

ARGS = ["--strategy", "evolution", "--ranker", "meco", "--ratings", "40", "--population", "8",
        "--num-images", "64", "--holdout-images", "64", "--channels", "8", "--cells", "1", "--no-progress"]


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=16)


def test_killed_evolution_resumes_to_the_same_result(cifar_subset: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SSNAS_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    data = ["--data", str(cifar_subset / "train")]
    reference = subprocess.run([*SSNAS, "search", *data, *ARGS, "--out", str(tmp_path / "reference")], env=env,
                               capture_output=True, text=True, timeout=600)  # fmt: skip
    assert reference.returncode == 0, reference.stderr

    killed = tmp_path / "killed"
    process = subprocess.Popen([*SSNAS, "search", *data, *ARGS, "--out", str(killed)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    state = killed / "evolution.json"
    assert kill_once_written(process, state), "the search finished before it could be killed; make it longer"
    rated_before = len(json.loads(state.read_text())["ratings"])
    assert 0 < rated_before < 40

    resumed = subprocess.run([*SSNAS, "search", *data, *ARGS, "--out", str(killed), "--resume"], env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    first = json.loads((tmp_path / "reference" / "result.json").read_text())
    second = json.loads((killed / "result.json").read_text())
    assert second["best"] == first["best"]
    assert (killed / "candidates.csv").read_text() == (tmp_path / "reference" / "candidates.csv").read_text()
    assert "evolution: 40/40 architectures rated (100%)" in (tmp_path / "reference" / "search.log").read_text()


def test_each_space_has_its_default_strategy_and_a_given_one_is_kept() -> None:
    from ssnas.run import SPACE_STRATEGIES, search_config
    from ssnas.spaces import SPACES

    built_in = {name for name in SPACES.names() if SPACES.origins[name].startswith("ssnas.")}
    assert set(SPACE_STRATEGIES) == built_in  # no built-in space falls back unnoticed; plugins do (evolution)
    assert search_config(space="nb201").run.strategy == "evolution"  # measured best on NB201 (README)
    assert search_config(space="nats-size").run.strategy == "evolution"  # SETN has no NATS supernet
    assert search_config(space="hytra").run.strategy == "bossnas"
    assert search_config(space="nb201", strategy="setn").run.strategy == "setn"


def test_nats_search_on_its_defaults_rates_with_the_nats_ranker_and_reports_the_table(
    cifar_subset: Path, shared_data: Path, tmp_path: Path
) -> None:
    nats_csv = shared_data / "benchmarks" / "nats_sss.csv"
    env = {**os.environ, "SSNAS_CACHE": str(tmp_path / "cache"), "SSNAS_NATS_TABLE": str(nats_csv)}
    out = tmp_path / "nats"
    done = subprocess.run([*SSNAS, "search", "--space", "nats-size", "--data", str(cifar_subset / "train"),
                           "--ratings", "6", "--population", "3", "--num-images", "64", "--holdout-images", "32", "--out", str(out),
                           "--no-progress", "--json"], env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["strategy"] == "evolution" and payload["info"]["rating"] == "az-synflow"
    assert payload["info"]["rated"] == 6
    from ssnas.groundtruth.tables import TABLES

    table = TABLES.create("nats-sss", path=nats_csv)
    assert payload["ground_truth"] == table.metrics(payload["best"]["arch"])  # the NATS table, not NB201's
    assert "evolution: 6/6 architectures rated" in (out / "search.log").read_text()

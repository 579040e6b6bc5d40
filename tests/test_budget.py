"""Compute budgets: refused inputs, the smallest achievable cost, and never an over-budget result."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import copy_cifar_subset, run_ssnas
from ssnas.errors import UserError
from ssnas.spaces import Architecture, create_space
from ssnas.spaces.budget import Budget, Constraint
from ssnas.strategies.base import SearchTask, keep_within
from ssnas.strategies.evolution import Evolution
from ssnas.strategies.proxy import TrialOutcome
from ssnas.strategies.raters import Columns
from ssnas.strategies.tpe import OptunaSearch
from ssnas.studies import StudyConfig

NB201 = create_space("nb201")


class BiggestFirst:
    """A rater that prefers more parameters: it pushes every search against the budget."""

    name = "params"

    def columns(self, archs: Sequence[Architecture]) -> Columns:
        return {"params": [float(NB201.num_parameters(a)) for a in archs]}

    def combine(self, columns: Columns) -> list[float]:
        return columns["params"]


def task(budget: Constraint | None) -> SearchTask:
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    return SearchTask(space=NB201, images=images, holdout_images=images, budget=budget)


@pytest.mark.parametrize("bounds", [dict(max_flops=0), dict(max_params=-1.0), dict(max_latency_ms=float("nan"))])
def test_zero_negative_and_nan_budgets_are_refused(bounds: dict[str, float]) -> None:
    with pytest.raises(UserError, match="must be a positive number"):
        Budget(**bounds)


def test_an_impossible_budget_names_the_smallest_cost() -> None:
    with pytest.raises(UserError, match=r"--max-flops 5: the smallest is 7\.783 MFLOPs"):
        Constraint(NB201, Budget(max_flops=5)).check_feasible()
    with pytest.raises(UserError, match=r"--max-params 0\.05: the smallest is 0\.07331 M parameters"):
        Constraint(NB201, Budget(max_params=0.05)).check_feasible()
    Constraint(NB201, Budget(max_flops=7.8)).check_feasible()  # the cheapest cell fits


def test_nb201_costs_match_the_benchmark_convention() -> None:
    costs = Constraint(NB201, Budget(max_flops=1000)).costs
    best = NB201.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert costs.flops(best) == pytest.approx(220.11968)  # NAS-Bench-201's largest cell, in MFLOPs
    assert costs.params(best) == pytest.approx(1.531546)  # params_M of nb201.csv


def test_keep_within_drops_over_budget_candidates() -> None:
    from ssnas.strategies.base import ScoredArch, SearchResult

    constraint = Constraint(NB201, Budget(max_flops=50))
    archs = [NB201.sample(random.Random(i)) for i in range(40)]
    scored = sorted((ScoredArch(a, constraint.costs.flops(a)) for a in archs), key=lambda s: -s.score)
    kept = keep_within(SearchResult(scored[0], scored), constraint)
    assert kept.candidates and all(constraint.costs.flops(c.arch) <= 50 for c in kept.candidates)
    assert kept.best == max(kept.candidates, key=lambda c: c.score)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flops=st.one_of(st.none(), st.floats(8.0, 230.0)), params=st.one_of(st.none(), st.floats(0.08, 1.6)),
       seed=st.integers(0, 1000))  # fmt: skip
def test_a_budgeted_search_never_returns_an_over_budget_architecture(
    flops: float | None, params: float | None, seed: int
) -> None:
    budget = Budget(max_flops=flops, max_params=params)
    constraint = Constraint(NB201, budget) if budget else None
    try:
        if constraint is not None:
            constraint.check_feasible()
    except UserError:
        return  # no cell meets both bounds together: refused up front
    evolution = Evolution(rater=BiggestFirst(), ratings=25, population=8, exhaustive=False)
    found = [evolution.search(replace_seed(task(constraint), seed)).best.arch]

    def evaluate(arch: Architecture) -> TrialOutcome:
        return TrialOutcome(loss=-float(NB201.num_parameters(arch)))

    optuna_search = OptunaSearch("random", study=StudyConfig(n_trials=6), evaluate=evaluate)
    found.append(keep_within(optuna_search.search(replace_seed(task(constraint), seed)), constraint).best.arch)
    for arch in found:
        assert flops is None or NB201.flops(arch) / 1e6 <= flops
        assert params is None or NB201.num_parameters(arch) / 1e6 <= params


def replace_seed(search_task: SearchTask, seed: int) -> SearchTask:
    search_task.seed = seed
    return search_task


# --- command line -------------------------------------------------------------------------------


TINY = ["--num-images", "64", "--holdout-images", "64", "--channels", "8", "--cells", "1", "--no-progress", "--json"]


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=16)


def test_cli_refuses_bad_budgets_in_one_line(tmp_path: Path) -> None:
    zero = run_ssnas("search", "--strategy", "evolution", "--max-flops", "0", "--out", str(tmp_path / "a"))
    assert zero.returncode != 0 and zero.stderr.strip().count("\n") == 0
    assert "--max-flops must be a positive number" in zero.stderr
    impossible = run_ssnas("search", "--strategy", "random", "--max-params", "0.01", "--out", str(tmp_path / "b"))
    assert impossible.returncode != 0 and impossible.stderr.strip().count("\n") == 0
    assert "the smallest is 0.07331 M parameters" in impossible.stderr
    assert not (tmp_path / "b").exists()  # refused before any run folder is made


def test_cli_evolution_within_flops_params_and_latency(cifar_subset: Path, tmp_path: Path) -> None:
    result = run_ssnas("search", "--strategy", "evolution", "--data", str(cifar_subset / "train"), "--out",
                       str(tmp_path / "run"), "--ranker", "meco", "--ratings", "12", "--population", "6",
                       "--max-flops", "60", "--max-params", "0.6", "--max-latency-ms", "500", *TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    budget = payload["budget"]
    assert budget["limits"] == {"flops": 60.0, "params": 0.6, "latency_ms": 500.0} and budget["within"]
    assert budget["cost"]["flops"] <= 60 and budget["cost"]["params"] <= 0.6 and budget["cost"]["latency_ms"] <= 500
    assert budget["latency_setting"]["batch_size"] == 1 and budget["latency_setting"]["precision"] == "fp32"
    assert json.loads((tmp_path / "run" / "result.json").read_text())["budget"] == budget
    assert json.loads((tmp_path / "run" / "latency.json").read_text())["latency_ms"]  # cached per arch


@pytest.mark.parametrize("strategy", ["tpe", "random"])
def test_cli_rating_trials_within_a_flops_budget(strategy: str, cifar_subset: Path, tmp_path: Path) -> None:
    result = run_ssnas("search", "--strategy", strategy, "--trial-objective", "rating", "--ranker", "meco",
                       "--trials", "5", "--max-flops", "40", "--data", str(cifar_subset / "train"),
                       "--out", str(tmp_path / "run"), *TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["budget"]["cost"]["flops"] <= 40 and payload["info"]["complete"] == 5
    assert "meco" in payload["best"]  # the rating's value (init-meco is the same signal), not a trained proxy loss

"""Ranking metrics on hand-worked examples and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssnas.errors import UserError
from ssnas.ranking.metrics import (
    bootstrap_ci,
    kendall_tau,
    pearson_r,
    rank_report,
    regret,
    spearman_rho,
    top_k_overlap,
)

CORRELATIONS = (kendall_tau, spearman_rho, pearson_r)


@pytest.mark.parametrize("metric", CORRELATIONS)
def test_concordant_and_reversed(metric) -> None:  # type: ignore[no-untyped-def]
    assert metric([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert metric([1, 2, 3, 4, 5], [50, 40, 30, 20, 10]) == pytest.approx(-1.0)


def test_hand_worked_kendall_and_spearman() -> None:
    # One discordant pair (1, 2) out of 6: tau = (5 - 1) / 6; sum d^2 = 2: rho = 1 - 6*2/(4*15).
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def test_ties() -> None:
    # tau-b: 2 concordant, 0 discordant, one pair tied in pred: 2 / sqrt((3-1) * 3).
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    # Average ranks (1.5, 1.5, 3) vs (1, 2, 3): 1.5 / sqrt(1.5 * 2).
    assert spearman_rho([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3))


def test_hand_worked_pearson() -> None:
    assert pearson_r([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))


@pytest.mark.parametrize("metric", CORRELATIONS)
def test_constant_input_is_undefined(metric) -> None:  # type: ignore[no-untyped-def]
    assert math.isnan(metric([1, 1, 1], [1, 2, 3]))


@given(st.lists(st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)), min_size=3, max_size=30))
def test_rank_correlations_ignore_monotone_transforms(pairs: list[tuple[int, int]]) -> None:
    pred, truth = [p for p, _ in pairs], [t for _, t in pairs]
    squashed = [p**3 + 5 for p in pred]  # strictly increasing, exact in float
    for metric in (kendall_tau, spearman_rho):
        a, b = metric(pred, truth), metric(squashed, truth)
        assert (math.isnan(a) and math.isnan(b)) or (a == pytest.approx(b, abs=1e-9) and -1 - 1e-9 <= a <= 1 + 1e-9)


def test_top_k_overlap() -> None:
    pred, truth = [5, 4, 3, 2, 1], [5, 1, 4, 3, 2]
    assert top_k_overlap(pred, truth, 1) == 1.0
    assert top_k_overlap(pred, truth, 2) == 0.5  # {0, 1} vs {0, 2}
    assert top_k_overlap(pred, truth, 3) == pytest.approx(2 / 3)  # {0, 1, 2} vs {0, 2, 3}
    assert top_k_overlap(pred, truth, 5) == 1.0
    assert top_k_overlap([1, 1, 1, 0], [0, 1, 2, 3], 2) == 0.0  # ties go to earlier positions
    with pytest.raises(UserError, match="1 <= k <= 5"):
        top_k_overlap(pred, truth, 6)


def test_regret() -> None:
    assert regret([0.1, 0.9, 0.5], [70.0, 60.0, 90.0]) == 30.0
    assert regret([0.1, 0.2, 0.5], [70.0, 60.0, 90.0]) == 0.0


def test_bad_inputs() -> None:
    with pytest.raises(UserError, match="equal length"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(UserError, match="at least 2"):
        regret([1], [1])
    with pytest.raises(UserError, match="finite"):
        spearman_rho([1, float("nan"), 3], [1, 2, 3])


@pytest.fixture
def noisy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    return truth + rng.normal(size=200), truth


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded(noisy: tuple[np.ndarray, np.ndarray]) -> None:
    pred, truth = noisy
    low, high = bootstrap_ci(kendall_tau, pred, truth, n_boot=300, seed=3)
    assert low < kendall_tau(pred, truth) < high
    assert (low, high) == bootstrap_ci(kendall_tau, pred, truth, n_boot=300, seed=3)
    assert (low, high) != bootstrap_ci(kendall_tau, pred, truth, n_boot=300, seed=4)
    narrow = bootstrap_ci(kendall_tau, pred, truth, n_boot=300, seed=3, level=0.5)
    assert low < narrow[0] < narrow[1] < high
    with pytest.raises(UserError, match="level"):
        bootstrap_ci(kendall_tau, pred, truth, level=1.5)


def test_rank_report_bundles_everything(noisy: tuple[np.ndarray, np.ndarray]) -> None:
    pred, truth = noisy
    report = rank_report(pred, truth, ks=(5, 20), n_boot=100)
    assert report["n"] == 200
    assert report["kendall_tau"] == kendall_tau(pred, truth)
    assert report["spearman_rho"] == spearman_rho(pred, truth)
    assert report["pearson_r"] == pearson_r(pred, truth)
    assert report["top_20_overlap"] == top_k_overlap(pred, truth, 20)
    assert report["regret"] == regret(pred, truth)
    for name in ("kendall_tau", "spearman_rho", "pearson_r"):
        low, high = report[f"{name}_ci"]  # type: ignore[misc]
        assert low < report[name] < high  # type: ignore[operator]
    assert set(report) == {
        "n", "kendall_tau", "kendall_tau_ci", "spearman_rho", "spearman_rho_ci", "pearson_r",
        "pearson_r_ci", "top_5_overlap", "top_20_overlap", "regret",
    }


def test_bootstrap_draws_one_replicate_at_a_time_as_the_block_draw() -> None:
    """Rows drawn per replicate (memory n, not n_boot x n) are numpy's (n_boot, n) block draw."""
    rng = np.random.default_rng(1)
    pred = rng.normal(size=501)
    truth = pred + rng.normal(size=501)
    rows = np.random.default_rng(3).integers(0, 501, size=(200, 501))
    values = np.array([spearman_rho(pred[r], truth[r]) for r in rows])
    assert bootstrap_ci(spearman_rho, pred, truth, n_boot=200, seed=3) == tuple(np.percentile(values, [2.5, 97.5]))

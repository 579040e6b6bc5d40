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
    ndcg,
    pearson_r,
    pick_at,
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
    assert math.isnan(report["ndcg"])  # type: ignore[arg-type]  # negative truth: a negative gain, undefined
    assert report["ndcg_k"] == 200
    assert report["pick_at_100"] == pick_at(pred, truth, 100)
    assert report["pick_at_100_oracle"] == pick_at(truth, truth, 100)
    assert set(report) == {
        "n", "kendall_tau", "kendall_tau_ci", "spearman_rho", "spearman_rho_ci", "pearson_r",
        "pearson_r_ci", "top_5_overlap", "top_20_overlap", "regret", "ndcg", "ndcg_k", "pick_at_100",
        "pick_at_100_oracle",
    }
    small = rank_report(pred[:50], truth[:50] + 10, ks=(5,), n_boot=10)
    assert "pick_at_100" not in small and small["ndcg"] == ndcg(pred[:50], truth[:50] + 10)  # fewer than 100 cells


def test_bootstrap_draws_one_replicate_at_a_time_as_the_block_draw() -> None:
    """Rows drawn per replicate (memory n, not n_boot x n) are numpy's (n_boot, n) block draw."""
    rng = np.random.default_rng(1)
    pred = rng.normal(size=501)
    truth = pred + rng.normal(size=501)
    rows = np.random.default_rng(3).integers(0, 501, size=(200, 501))
    values = np.array([spearman_rho(pred[r], truth[r]) for r in rows])
    assert bootstrap_ci(spearman_rho, pred, truth, n_boot=200, seed=3) == tuple(np.percentile(values, [2.5, 97.5]))


# Five cells A..E (higher pred = predicted better). In descending pred order B, D, E, A, C, with
# truth 1, 2, 1, 3, 0 and nDCG gains 2^truth - 1 = 1, 3, 1, 7, 0.
PRED = [0.3, 0.9, 0.1, 0.7, 0.5]
TRUTH = [3.0, 1.0, 0.0, 2.0, 1.0]


def test_ndcg_by_hand() -> None:
    # DCG@5 = 1/log2(2) + 3/log2(3) + 1/log2(4) + 7/log2(5) + 0/log2(6) = 1 + 1.89279 + 0.5 + 3.01475 = 6.40754;
    # ideal order 7, 3, 1, 1, 0: IDCG@5 = 7 + 3/log2(3) + 1/2 + 1/log2(5) = 9.82347; 6.40754 / 9.82347 = 0.65227.
    full = (1 + 3 / math.log2(3) + 1 / 2 + 7 / math.log2(5)) / (7 + 3 / math.log2(3) + 1 / 2 + 1 / math.log2(5))
    assert ndcg(PRED, TRUTH, k=5) == pytest.approx(full) == pytest.approx(0.65227, abs=1e-5)
    assert ndcg(PRED, TRUTH) == pytest.approx(full)  # the default cut-off 1000 > 5 cells: all of them
    # @2: (1 + 3/log2(3)) / (7 + 3/log2(3)) = 2.89279 / 8.89279 = 0.32530
    assert ndcg(PRED, TRUTH, k=2) == pytest.approx(0.32530, abs=1e-5)
    assert ndcg(TRUTH, TRUTH, k=2) == 1.0


def test_ndcg_averages_tied_predictions_and_is_undefined_without_gain() -> None:
    # Tied run {0, 1} (gains 3 and 0) shares its mean 1.5 over positions 1 and 2; cell 2 (gain 1) is third.
    expected = (1.5 * (1 + 1 / math.log2(3)) + 1 / 2) / (3 + 1 / math.log2(3))
    assert ndcg([1, 1, 0], [2, 0, 1]) == pytest.approx(expected)
    assert ndcg([1, 1, 0], [0, 2, 1]) == pytest.approx(expected)  # the input order of a tie does not matter
    assert math.isnan(ndcg([1, 2, 3], [0, 0, 0])) and math.isnan(ndcg([1, 2, 3], [-1, 2, 3]))
    with pytest.raises(UserError, match="cut-off"):
        ndcg([1, 2, 3], [1, 2, 3], k=0)


def test_pick_at_by_hand() -> None:
    # n = 5: P(position r is the pick) = C(4 - r, m - 1) / C(5, m); truth in pred order 1, 2, 1, 3, 0.
    # m = 2: (4, 3, 2, 1, 0) / 10 -> 0.4*1 + 0.3*2 + 0.2*1 + 0.1*3 = 1.5
    assert pick_at(PRED, TRUTH, 2) == pytest.approx(1.5)
    # m = 3: (6, 3, 1, 0, 0) / 10 -> 0.6*1 + 0.3*2 + 0.1*1 = 1.3
    assert pick_at(PRED, TRUTH, 3) == pytest.approx(1.3)
    # the perfect ranker at m = 2: truth in its order 3, 2, 1, 1, 0 -> 0.4*3 + 0.3*2 + 0.2*1 + 0.1*1 = 2.1
    assert pick_at(TRUTH, TRUTH, 2) == pytest.approx(2.1)
    assert pick_at(PRED, TRUTH, 5) == pytest.approx(1.0)  # m = n: the top-scored cell B
    assert pick_at(PRED, TRUTH, 1) == pytest.approx(sum(TRUTH) / 5)  # m = 1: the mean
    with pytest.raises(UserError, match="1 <= m <= 5"):
        pick_at(PRED, TRUTH, 6)
    with pytest.raises(UserError, match="1 <= m <= 5"):
        pick_at(PRED, TRUTH, 0)


def test_pick_at_ties_pick_uniformly_among_the_tied_top() -> None:
    # Subsets of 2 of 3: {0, 1} tie -> (3 + 0) / 2, {0, 2} -> 3, {1, 2} -> 0; mean (1.5 + 3 + 0) / 3 = 1.5.
    assert pick_at([1, 1, 0], [3, 0, 6], 2) == pytest.approx(1.5)
    assert pick_at([1, 1, 0], [0, 3, 6], 2) == pytest.approx(1.5)


def test_pick_at_agrees_with_drawing_subsets() -> None:
    rng = np.random.default_rng(7)
    pred, truth = rng.normal(size=30), rng.uniform(80, 95, size=30)
    picks = []
    for _ in range(20_000):
        drawn = rng.choice(30, size=8, replace=False)
        picks.append(truth[drawn[np.argmax(pred[drawn])]])
    error = np.std(picks) / math.sqrt(len(picks))
    assert abs(np.mean(picks) - pick_at(pred, truth, 8)) < 4 * error


def test_pick_at_on_a_whole_space_is_exact() -> None:
    # The best of m draws of 0..n-1 without replacement has mean m (n + 1) / (m + 1) - 1 (log-gamma: ~1e-11).
    values = np.arange(15625.0)
    assert pick_at(values, values, 100) == pytest.approx(100 * 15626 / 101 - 1, rel=1e-9)


pairs = st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 100)), min_size=2, max_size=25)


@given(pairs, st.integers(1, 25))
def test_pick_at_properties(cells: list[tuple[int, int]], m: int) -> None:
    pred, truth = [float(p) for p, _ in cells], [float(t) for _, t in cells]
    m = min(m, len(cells))
    value = pick_at(pred, truth, m)
    assert min(truth) - 1e-9 <= value <= pick_at(truth, truth, m) + 1e-9  # no ranker beats the perfect one
    assert pick_at([p**3 + 5 for p in pred], truth, m) == pytest.approx(value)  # only the order matters
    if m > 1:
        assert pick_at(truth, truth, m - 1) <= pick_at(truth, truth, m) + 1e-9  # a larger draw has a better best


@given(pairs, st.integers(1, 30))
def test_ndcg_properties(cells: list[tuple[int, int]], k: int) -> None:
    pred, truth = [float(p) for p, _ in cells], [float(t) for _, t in cells]
    value = ndcg(pred, truth, k)
    if max(truth) == 0:
        assert math.isnan(value)
        return
    assert -1e-12 <= value <= 1 + 1e-12
    assert ndcg(truth, truth, k) == pytest.approx(1.0)
    assert ndcg([p**3 + 5 for p in pred], truth, k) == pytest.approx(value)

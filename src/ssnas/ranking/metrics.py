"""Ranking metrics: how well predicted scores order architectures by their true accuracy.

Pure functions on two equal-length float sequences, `pred` (higher = predicted better) and
`truth` (higher = better). Correlations are scipy's: Kendall's tau-b (ties handled),
Spearman's rho, Pearson's r; a constant input gives NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ssnas.errors import UserError

Metric = Callable[[Sequence[float], Sequence[float]], float]


def _pair(pred: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.ndim != 1 or p.shape != t.shape:
        raise UserError(f"predictions and truth must be 1-D of equal length, got {p.shape} and {t.shape}")
    if len(p) < 2:
        raise UserError(f"need at least 2 architectures to rank, got {len(p)}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise UserError("predictions and truth must be finite (found NaN or Inf)")
    return p, t


def _correlation(name: str, pred: Sequence[float], truth: Sequence[float]) -> float:
    """scipy.stats.`name` of the pair (scipy is imported here: it costs a second at CLI start)."""
    from scipy import stats

    p, t = _pair(pred, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        result = getattr(stats, name)(p, t)
    return float(result.statistic)  # type: ignore[attr-defined]


def kendall_tau(pred: Sequence[float], truth: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) pairs, normalised for ties. In [-1, 1]."""
    return _correlation("kendalltau", pred, truth)


def spearman_rho(pred: Sequence[float], truth: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the ranks (ties get average ranks)."""
    return _correlation("spearmanr", pred, truth)


def pearson_r(pred: Sequence[float], truth: Sequence[float]) -> float:
    """Pearson's linear correlation of the raw values."""
    return _correlation("pearsonr", pred, truth)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values; ties go to the earlier position."""
    return np.argsort(-values, kind="stable")[:k]


def top_k_overlap(pred: Sequence[float], truth: Sequence[float], k: int) -> float:
    """Fraction of the true top-k that the predicted top-k contains, in [0, 1]."""
    p, t = _pair(pred, truth)
    if not 1 <= k <= len(p):
        raise UserError(f"top-k needs 1 <= k <= {len(p)} architectures, got k={k}")
    return len(set(_top(p, k).tolist()) & set(_top(t, k).tolist())) / k


def regret(pred: Sequence[float], truth: Sequence[float]) -> float:
    """Best true value minus the true value of the predicted best (first one on ties); >= 0."""
    p, t = _pair(pred, truth)
    return float(t.max() - t[int(np.argmax(p))])


def bootstrap_ci(
    metric_fn: Metric,
    pred: Sequence[float],
    truth: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric_fn(pred, truth)`, resampling pairs.

    Replicates where the metric is undefined (NaN, e.g. a constant resample) are dropped.
    Deterministic for a given `seed`.
    """
    p, t = _pair(pred, truth)
    if not 0.0 < level < 1.0:
        raise UserError(f"confidence level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise UserError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    # one replicate's (n,) rows at a time: the same draws as one (n_boot, n) array (numpy's stream
    # is sequential), without its n_boot x n x 8 bytes (122 MB for all of NB201)
    replicates = (rng.integers(0, len(p), size=len(p)) for _ in range(n_boot))
    values = np.array([metric_fn(p[rows], t[rows]) for rows in replicates])
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


def rank_report(
    pred: Sequence[float],
    truth: Sequence[float],
    ks: Sequence[int] = (10, 50),
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, int | float | tuple[float, float]]:
    """All metrics in one dict: `n`, `kendall_tau`, `spearman_rho`, `pearson_r` (each with a
    bootstrap `<name>_ci` (low, high)), `top_<k>_overlap` per k, and `regret`."""
    p, t = _pair(pred, truth)
    report: dict[str, int | float | tuple[float, float]] = {"n": len(p)}
    for name, function in (
        ("kendall_tau", kendall_tau),
        ("spearman_rho", spearman_rho),
        ("pearson_r", pearson_r),
    ):
        report[name] = function(p, t)
        report[f"{name}_ci"] = bootstrap_ci(function, p, t, n_boot=n_boot, seed=seed, level=level)
    for k in ks:
        report[f"top_{k}_overlap"] = top_k_overlap(p, t, k)
    report["regret"] = regret(p, t)
    return report

"""Ranking metrics: how well predicted scores order architectures by their true accuracy.

Pure functions on two equal-length float sequences, `pred` (higher = predicted better) and
`truth` (higher = better). Correlations are scipy's: Kendall's tau-b (ties handled),
Spearman's rho, Pearson's r; a constant input gives NaN. At the top of a space the correlations
say little, so two top-of-ranking figures stand beside them: `ndcg` (VKDNW's nDCG) and `pick_at`
(the expected true accuracy of the ranker's pick among m random cells).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ssnas.errors import UserError

# a score list or a 1-D float array (the metrics call each other with the arrays `_pair` returns)
Scores = Sequence[float] | np.ndarray
Metric = Callable[[Scores, Scores], float]


def _pair(pred: Scores, truth: Scores) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.ndim != 1 or p.shape != t.shape:
        raise UserError(f"predictions and truth must be 1-D of equal length, got {p.shape} and {t.shape}")
    if len(p) < 2:
        raise UserError(f"need at least 2 architectures to rank, got {len(p)}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise UserError("predictions and truth must be finite (found NaN or Inf)")
    return p, t


def _correlation(name: str, pred: Scores, truth: Scores) -> float:
    """scipy.stats.`name` of the pair (scipy is imported here: it costs a second at CLI start)."""
    from scipy import stats

    p, t = _pair(pred, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        result = getattr(stats, name)(p, t)
    return float(result.statistic)


def kendall_tau(pred: Scores, truth: Scores) -> float:
    """Kendall's tau-b: (concordant - discordant) pairs, normalised for ties. In [-1, 1]."""
    return _correlation("kendalltau", pred, truth)


def spearman_rho(pred: Scores, truth: Scores) -> float:
    """Spearman's rho: Pearson correlation of the ranks (ties get average ranks)."""
    return _correlation("spearmanr", pred, truth)


def pearson_r(pred: Scores, truth: Scores) -> float:
    """Pearson's linear correlation of the raw values."""
    return _correlation("pearsonr", pred, truth)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values; ties go to the earlier position."""
    return np.argsort(-values, kind="stable")[:k]


def top_k_overlap(pred: Scores, truth: Scores, k: int) -> float:
    """Fraction of the true top-k that the predicted top-k contains, in [0, 1]."""
    p, t = _pair(pred, truth)
    if not 1 <= k <= len(p):
        raise UserError(f"top-k needs 1 <= k <= {len(p)} architectures, got k={k}")
    return len(set(_top(p, k).tolist()) & set(_top(t, k).tolist())) / k


def regret(pred: Scores, truth: Scores) -> float:
    """Best true value minus the true value of the predicted best (first one on ties); >= 0."""
    p, t = _pair(pred, truth)
    return float(t.max() - t[int(np.argmax(p))])


def _tie_averaged(pred: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` in the order of descending `pred`, each run of tied predictions replaced by its mean:
    a tie carries no order, so every placement of the tied cells counts equally."""
    order = np.argsort(-pred, kind="stable")
    ranked = pred[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # first position of each tied run
    sizes = np.diff(np.r_[starts, len(ranked)])
    return np.repeat(np.add.reduceat(values[order], starts) / sizes, sizes)


def ndcg(pred: Scores, truth: Scores, k: int = 1000) -> float:
    """Normalised discounted cumulative gain at cut-off `k`, as VKDNW evaluates rankers.

    Týbl & Neumann, "Training-free Neural Architecture Search through Variance of Knowledge of
    Deep Network Weights", CVPR 2025 (arXiv 2502.04975). Their code (github.com/ondratybl/VKDNW,
    NB201/tss_utils.py `get_metrics` and paper_preparation.ipynb, the notebook that builds the
    paper's table) computes `sklearn.metrics.ndcg_score(y_true=2**acc - 1, y_score=proxy, k=1000)`
    with `acc` the ground-truth accuracy in percent, i.e. with the cells in descending `pred` order
    (position j = 1, 2, ...)::

        gain_j  = 2 ** truth_j - 1
        DCG@k   = sum_{j=1}^{min(k, n)} gain_j / log2(j + 1)
        nDCG@k  = DCG@k / IDCG@k        (IDCG@k: the DCG@k of the cells in descending `truth` order)

    The exponential gain makes the figure about the very top: on NB201's CIFAR-10 scale one
    accuracy point doubles a cell's gain. `truth` must therefore be on the percent scale the tables
    use (a fraction in [0, 1] gives an almost flat gain and a different figure). Ties in `pred` are
    averaged as sklearn does by default: each tied run shares the mean gain of its cells over the
    positions it spans, so the value does not depend on the input order. Gains are computed as
    2 ** (truth - max) - 2 ** -max (the ratio is unchanged) so no accuracy overflows. In [0, 1];
    1 for an order that agrees with `truth` on the top k. NaN where undefined: a negative `truth`
    (a negative gain) or an all-zero `truth` (IDCG = 0).
    """
    p, t = _pair(pred, truth)
    if k < 1:
        raise UserError(f"nDCG needs a cut-off k >= 1, got k={k}")
    if (t < 0).any() or not (t > 0).any():
        return float("nan")
    top = float(t.max())
    gain = np.exp2(t - top) - np.exp2(-top)
    discount = 1.0 / np.log2(np.arange(2, len(p) + 2))
    discount[k:] = 0.0
    ideal = float(np.sort(gain)[::-1] @ discount)
    return float(_tie_averaged(p, gain) @ discount) / ideal


def pick_at(pred: Scores, truth: Scores, m: int = 100) -> float:
    """Expected true value of the ranker's pick among `m` cells drawn uniformly without replacement.

    The pick of a drawn subset is its highest-`pred` cell. With the n cells in descending `pred`
    order (0-based position r), the cell at r is the pick exactly when it is drawn and the other
    m - 1 drawn cells all lie below it, so, computed exactly (log-gamma, no simulation)::

        P(r) = C(n - 1 - r, m - 1) / C(n, m)          (0 for r > n - m)
        pick@m = sum_r P(r) * truth_r

    Ties in `pred`: the subset's pick is taken uniformly among its tied top cells, which makes every
    cell of a tied run equally likely: each tied cell counts with the mean truth of its run (the
    P(r) of a run sum to the chance that the subset's top score is that run's). m = n gives the
    truth of the top-scored cell, m = 1 the mean truth; `pick_at(truth, truth, m)` is the perfect
    ranker's value, the expected best of m. Needs 1 <= m <= n (a UserError otherwise).
    """
    from scipy.special import gammaln

    p, t = _pair(pred, truth)
    n = len(p)
    if not 1 <= m <= n:
        raise UserError(f"pick@m needs 1 <= m <= {n} rated architectures, got m={m}")
    r = np.arange(n - m + 1)  # positions that can be the pick
    log_total = gammaln(n + 1) - gammaln(m + 1) - gammaln(n - m + 1)
    log_p = gammaln(n - r) - gammaln(m) - gammaln(n - r - m + 1) - log_total  # log C(n-1-r, m-1) / C(n, m)
    return float(np.exp(log_p) @ _tie_averaged(p, t)[: n - m + 1])


def bootstrap_ci(
    metric_fn: Metric,
    pred: Scores,
    truth: Scores,
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
    pred: Scores,
    truth: Scores,
    ks: Sequence[int] = (10, 50),
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    ndcg_k: int = 1000,
    pick_m: int = 100,
) -> dict[str, int | float | tuple[float, float]]:
    """All metrics in one dict: `n`, `kendall_tau`, `spearman_rho`, `pearson_r` (each with a
    bootstrap `<name>_ci` (low, high)), `top_<k>_overlap` per k, `regret`, `ndcg` at cut-off
    `ndcg_k` (the cut-off used, min(ndcg_k, n), under `ndcg_k`), and, when at least `pick_m` cells
    are rated, `pick_at_<m>` with the perfect ranker's `pick_at_<m>_oracle` beside it."""
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
    report["ndcg"] = ndcg(p, t, k=ndcg_k)
    report["ndcg_k"] = min(ndcg_k, len(p))
    if pick_m <= len(p):
        report[f"pick_at_{pick_m}"] = pick_at(p, t, pick_m)
        report[f"pick_at_{pick_m}_oracle"] = pick_at(t, t, pick_m)
    return report

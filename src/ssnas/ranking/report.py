"""Scores against a benchmark table: the common yardstick for every ranker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ssnas.groundtruth.tables import BenchmarkTable
from ssnas.errors import UserError
from ssnas.ranking.metrics import rank_report


def correlate(
    keys: Sequence[str],
    scores: Sequence[float],
    table: BenchmarkTable,
    metric: str = "cifar10_valid",
    ks: Sequence[int] = (10, 50),
    baseline: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Kendall, Spearman, Pearson, top-k, regret, nDCG and pick@100 of `scores` vs `table[metric]`
    (`ssnas.ranking.metrics.rank_report`).

    With `baseline` (e.g. parameter counts of the same architectures), its
    report is added under "baseline" so every figure has its yardstick beside it.
    """
    if len(keys) != len(scores):
        raise UserError("scores and architectures differ in length")
    if len(keys) < 3:
        raise UserError(f"need at least 3 architectures to correlate, got {len(keys)}")
    truth = [table.query(key, metric) for key in keys]
    usable_ks = [k for k in ks if k < len(keys)]
    result: dict[str, Any] = {
        "metric": metric,
        "count": len(keys),
        **rank_report(list(scores), truth, ks=tuple(usable_ks)),
    }
    best = max(range(len(keys)), key=lambda i: scores[i])
    result["predicted_best"] = {"arch": keys[best], metric: truth[best]}
    if baseline is not None:
        result["baseline"] = rank_report(list(baseline), truth, ks=tuple(usable_ks))
    return result


def ranking_figures(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, key) of each figure of a `correlate` report after the three correlations, in the
    order every renderer shows them: regret and top-k overlaps, then the top-of-ranking figures
    (nDCG at its cut-off, pick@m and the perfect ranker's pick@m)."""
    figures = [(key, key) for key in sorted(report) if key.startswith("top_") or key == "regret"]
    if "ndcg" in report:
        figures.append((f"ndcg@{report['ndcg_k']}", "ndcg"))
    picks = sorted((k for k in report if k.startswith("pick_at_") and not k.endswith("_oracle")), key=len)
    for key in picks:
        figures += [(key, key), (f"{key} (perfect ranker)", f"{key}_oracle")]
    return figures

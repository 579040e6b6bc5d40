"""Ranking: correlation metrics against ground truth, baseline rankers, reports."""

from __future__ import annotations

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

__all__ = [
    "bootstrap_ci",
    "kendall_tau",
    "ndcg",
    "pearson_r",
    "pick_at",
    "rank_report",
    "regret",
    "spearman_rho",
    "top_k_overlap",
]

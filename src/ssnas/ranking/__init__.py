"""Ranking: correlation metrics against ground truth, baseline rankers, reports."""

from __future__ import annotations

from ssnas.ranking.metrics import (
    bootstrap_ci,
    kendall_tau,
    pearson_r,
    rank_report,
    regret,
    spearman_rho,
    top_k_overlap,
)

__all__ = [
    "bootstrap_ci",
    "kendall_tau",
    "pearson_r",
    "rank_report",
    "regret",
    "spearman_rho",
    "top_k_overlap",
]

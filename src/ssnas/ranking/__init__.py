"""Ranking: which architectures to rate and their scores files, metrics against ground truth, reports.

A rating's own storage (chunks, plan, sharing among workers) lives beside its engine in `ssnas.rating`.
"""

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

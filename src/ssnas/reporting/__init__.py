"""What a person opens after a run: figures and a self-contained `report.html`."""

from __future__ import annotations

from ssnas.reporting.figures import architecture_figure, loss_curve_figure, op_distribution_figure, scatter_figure
from ssnas.reporting.html import write_rank_report, write_search_report

__all__ = [
    "architecture_figure",
    "loss_curve_figure",
    "op_distribution_figure",
    "scatter_figure",
    "write_rank_report",
    "write_search_report",
]

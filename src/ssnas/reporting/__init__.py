"""What a person opens after a run: figures, a self-contained `report.html`, and `compare.html`."""

from __future__ import annotations

from ssnas.reporting.compare import compare_runs, compare_text
from ssnas.reporting.figures import architecture_figure, loss_curve_figure, op_distribution_figure, scatter_figure
from ssnas.reporting.html import REPORT_NAME, write_rank_report
from ssnas.reporting.record import RunRecord, load_run
from ssnas.reporting.search_page import write_search_report

__all__ = [
    "REPORT_NAME",
    "RunRecord",
    "architecture_figure",
    "compare_runs",
    "compare_text",
    "load_run",
    "loss_curve_figure",
    "op_distribution_figure",
    "scatter_figure",
    "write_rank_report",
    "write_search_report",
]

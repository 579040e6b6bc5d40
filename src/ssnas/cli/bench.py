"""`ssnas bench query|correlate`: ground truth from a benchmark table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ssnas.groundtruth.tables import TABLES
from ssnas.cli._common import emit, json_option
from ssnas.ranking.report import correlate, ranking_figures
from ssnas.ranking.selection import read_scores
from ssnas.spaces import create_space

table_option = click.option(
    "--table", "table_path", type=click.Path(path_type=Path), default=None,
    help="Benchmark CSV (default: $SSNAS_NB201_TABLE or ../shared/data/benchmarks/nb201.csv).",
)
metric_option = click.option("--metric", default="cifar10_valid", show_default=True, help="Ground-truth column.")


def load_table(path: Path | None) -> Any:
    return TABLES.create("nb201", path=path)


@click.group("bench")
def bench_group() -> None:
    """Query NAS-Bench-201 ground truth and score rankers against it."""


@bench_group.command("query")
@click.argument("arch")
@table_option
@json_option
def query_command(arch: str, table_path: Path | None, as_json: bool) -> None:
    """Every ground-truth metric of ARCH (a NAS-Bench-201 cell string)."""
    architecture = create_space("nb201").parse(arch)
    metrics = load_table(table_path).metrics(architecture.key)
    emit({"arch": architecture.key, **metrics}, as_json, _render_query)


def _render_query(payload: dict[str, Any]) -> None:
    table = Table("metric", "value", title=payload["arch"])
    for name, value in payload.items():
        if name != "arch":
            table.add_row(name, f"{value:g}" if isinstance(value, float) else str(value))
    Console().print(table)


@bench_group.command("correlate")
@click.argument("scores", type=click.Path(path_type=Path))
@table_option
@metric_option
@json_option
def correlate_command(scores: Path, table_path: Path | None, metric: str, as_json: bool) -> None:
    """Rank correlation of SCORES.csv (columns arch,score; higher = better) with the table."""
    space = create_space("nb201")
    pairs = read_scores(scores)
    keys = [space.parse(arch).key for arch, _ in pairs]
    report = correlate(keys, [score for _, score in pairs], load_table(table_path), metric)
    emit(report, as_json, render_rank_report)


def render_rank_report(report: dict[str, Any]) -> None:
    """Human table of a `correlate` report (and its baseline, when present)."""
    columns = [("this ranker", report)]
    if "baseline" in report:
        columns.append(("params baseline", report["baseline"]))
    table = Table("vs " + report["metric"], *[name for name, _ in columns],
                  title=f"{report['count']} architectures")
    for key in ("kendall_tau", "spearman_rho", "pearson_r"):
        cells = []
        for _, rep in columns:
            ci = rep.get(f"{key}_ci")
            cells.append(f"{rep[key]:.3f}" + (f"  [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
        table.add_row(key, *cells)
    for label, key in ranking_figures(report):
        table.add_row(label, *[f"{rep[key]:.3f}" for _, rep in columns if key in rep])
    Console().print(table)
    best = report["predicted_best"]
    Console().print(f"predicted best: {best['arch']}  ({report['metric']} {best[report['metric']]:.2f})")
    if report.get("skipped_images"):
        Console().print(f"{report['skipped_images']:,} unreadable image file(s) left out (--skip-corrupt)")
    if report.get("out"):
        Console().print(f"run folder: {report['out']}")

"""`ssnas report RUN_DIR` and `ssnas compare RUN_DIR...`: pages rebuilt from run folders alone."""

from __future__ import annotations

from pathlib import Path

import click

from ssnas.errors import UserError
from ssnas.reporting import compare_runs, compare_text, write_search_report

RUN_DIR = click.Path(path_type=Path, file_okay=True, dir_okay=True)
PAGE = click.Path(path_type=Path, dir_okay=True)


def _page_path(out: Path) -> Path:
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the page's file name (e.g. {out / 'report.html'})")
    return out


@click.command("report")
@click.argument("run_dir", type=RUN_DIR)
@click.option("--out", type=PAGE, default=None, help="Where to write the page  [default: RUN_DIR/report.html]")
def report_command(run_dir: Path, out: Path | None) -> None:
    """Rebuild report.html of the search in RUN_DIR from its files alone (config.yaml, result.json,
    candidates.csv and the strategy's own): summary, trajectory, score against cost and against
    ground truth, the shortlist stage, the found cell, the settings as used."""
    path = write_search_report(run_dir, _page_path(out) if out is not None else None)
    click.echo(f"report: {path}")


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=RUN_DIR)
@click.option("--out", type=PAGE, default=Path("compare.html"), show_default=True, help="Where to write the page.")
def compare_command(run_dirs: tuple[Path, ...], out: Path) -> None:
    """Put searches side by side: one self-contained compare.html (found architectures, scores,
    ground truth, wall time, the settings that differ, the trajectories overlaid) and a table here."""
    if len(run_dirs) < 2:
        raise UserError("give at least two run folders to compare")
    records = compare_runs(list(run_dirs), _page_path(out))
    click.echo(compare_text(records))
    click.echo(f"compare: {out}")

"""`ssnas rank`: score a list of architectures and compare with ground truth."""

from __future__ import annotations

from pathlib import Path

import click

from ssnas.cli._common import config_option, emit, json_option
from ssnas.cli.bench import load_table, metric_option, render_rank_report, table_option
from ssnas.errors import UserError
from ssnas.ranking.rankers import RANKERS
from ssnas.ranking.report import correlate
from ssnas.ranking.selection import all_architectures, read_architectures, sample_architectures, write_scores
from ssnas.spaces import create_space


@click.command("rank")
@click.option("--ranker", type=click.Choice(RANKERS.names()), default="params", show_default=True,
              help="Zero-cost baseline ranker computed from ssnas's own networks.")
@click.option("--space", "space_name", default="nb201", show_default=True, help="Search space.")
@click.option("--archs", type=click.Path(path_type=Path), default=None,
              help="File of architectures (one per line, or CSV with an 'arch' column).")
@click.option("--sample", type=int, default=None, help="Rank N architectures sampled with --seed instead.")
@click.option("--all", "rank_all", is_flag=True, help="Rank every non-degenerate architecture of the space.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --sample.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write scores.csv here.")
@table_option
@metric_option
@config_option
@json_option
def rank_command(
    ranker: str, space_name: str, archs: Path | None, sample: int | None, rank_all: bool, seed: int,
    out: Path | None, table_path: Path | None, metric: str, as_json: bool,
) -> None:
    """Score architectures and report Kendall, Spearman and top-k against the benchmark."""
    space = create_space(space_name)
    if sum(x is not None and x is not False for x in (archs, sample, rank_all or None)) != 1:
        raise UserError("give exactly one of --archs FILE, --sample N or --all")
    if archs is not None:
        selection = read_architectures(space, archs)
    elif sample is not None:
        selection = sample_architectures(space, sample, seed)
    else:
        selection = all_architectures(space)
    scores = RANKERS.get(ranker)(space, selection)
    keys = [arch.key for arch in selection]
    if out is not None:
        write_scores(out, list(zip(keys, scores)))
    report = correlate(keys, scores, load_table(table_path), metric)
    report["ranker"] = ranker
    emit(report, as_json, render_rank_report)


"""`ssnas rank`: score a list of architectures and compare with ground truth."""

from __future__ import annotations

from pathlib import Path

import click

from ssnas.cli._common import config_option, emit, json_option, precision_option
from ssnas.cli.bench import load_table, metric_option, render_rank_report, table_option
from ssnas.errors import UserError
from ssnas.ranking.rankers import RANKERS
from ssnas.ranking.report import correlate
from ssnas.ranking.selection import all_architectures, read_architectures, sample_architectures, write_scores
from ssnas.run import SearchConfig, run_rank
from ssnas.training.distributed import is_main_process
from ssnas.training.progress import mirror_log_to_stderr
from ssnas.spaces import create_space


@click.command("rank")
@click.option("--ranker", type=click.Choice(RANKERS.names()), default=None,
              help="Zero-cost baseline ranker computed from ssnas's own networks [default: params].")
@click.option("--strategy", default=None, help="Rate with a trained strategy instead: setn | bossnas | tpe | random.")
@click.option("--space", "space_name", default="nb201", show_default=True, help="Search space.")
@click.option("--archs", type=click.Path(path_type=Path), default=None,
              help="File of architectures (one per line, or CSV with an 'arch' column).")
@click.option("--sample", type=int, default=None, help="Rank N non-degenerate architectures sampled with --seed.")
@click.option("--all", "rank_all", is_flag=True, help="Rank every non-degenerate architecture (rankers only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --sample (and the strategy).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder (strategies) or where scores.csv goes [runs/rank for strategies].")
@click.option("--resume", is_flag=True, help="Strategies: reuse the trained checkpoint in --out.")
@click.option("--objective", default="simclr", show_default=True, help="Strategies: training objective.")
@click.option("--data", default=None, help="Strategies: image folder or cifar10 [$SSNAS_DATA].")
@click.option("--preset", default="quick", show_default=True, help="Strategies: quick | paper.")
@click.option("--epochs", type=int, default=None, help="Strategies: training epochs [preset].")
@click.option("--num-images", type=int, default=None, help="Strategies: unlabeled training images [preset].")
@click.option("--holdout-images", type=int, default=None, help="Strategies: held-out unlabeled images [preset].")
@click.option("--batch-size", type=int, default=None, help="Strategies: training batch size [preset].")
@click.option("--channels", type=int, default=None, help="Strategies: network width C [preset].")
@click.option("--cells", type=int, default=None, help="Strategies: cells per stage N [preset].")
@click.option("--rating", multiple=True, help="SETN: label-free rating signal(s), repeatable [preset].")
@click.option("--device", default="auto", show_default=True)
@precision_option
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar.")
@table_option
@metric_option
@config_option
@json_option
def rank_command(
    ranker: str | None, strategy: str | None, space_name: str, archs: Path | None, sample: int | None,
    rank_all: bool, seed: int, out: Path | None, resume: bool, objective: str, data: str | None, preset: str,
    epochs: int | None, num_images: int | None, holdout_images: int | None, batch_size: int | None,
    channels: int | None, cells: int | None, rating: tuple[str, ...], device: str, precision: str,
    no_progress: bool, table_path: Path | None, metric: str, as_json: bool,
) -> None:
    """Score architectures and report Kendall, Spearman and top-k against the benchmark,
    next to the parameter-count baseline on the same architectures."""
    mirror_log_to_stderr(not no_progress and is_main_process())
    if ranker and strategy:
        raise UserError("give --ranker or --strategy, not both")
    if sum(x is not None and x is not False for x in (archs, sample, rank_all or None)) != 1:
        raise UserError("give exactly one of --archs FILE, --sample N or --all")
    space = create_space(space_name)
    if strategy is None:
        if archs is not None:
            selection = read_architectures(space, archs)
        elif sample is not None:
            selection = sample_architectures(space, sample, seed)
        else:
            selection = all_architectures(space)
        scores = RANKERS.get(ranker or "params")(space, selection)
        keys = [arch.key for arch in selection]
        name = ranker or "params"
    else:
        if rank_all:
            raise UserError("--all is for zero-cost rankers; a strategy rates --archs FILE or --sample N")
        config = SearchConfig(
            space=space_name, strategy=strategy, objective=objective, data=data, preset=preset, seed=seed,
            device=device, precision=precision, out=str(out or Path("runs/rank")), resume=resume, epochs=epochs, num_images=num_images,
            holdout_images=holdout_images, batch_size=batch_size, channels=channels, cells=cells, rating=rating or None, progress=not no_progress and not as_json,
            table=str(table_path) if table_path else None,
        )
        texts = [a.key for a in read_architectures(space, archs)] if archs is not None else None
        scored, _ = run_rank(config, texts, sample, seed)
        keys = [s.arch.key for s in scored]
        scores = [s.score for s in scored]
        selection = [s.arch for s in scored]
        out = Path(config.out)
        name = strategy
    if not is_main_process():  # under torchrun, process 0 writes and reports
        return
    if out is not None:
        write_scores(out / "scores.csv" if out.suffix != ".csv" else out, list(zip(keys, scores)))
    baseline = RANKERS.get("params")(space, selection) if name != "params" else None
    report = correlate(keys, scores, load_table(table_path), metric, baseline=baseline)
    report["ranker"] = name
    emit(report, as_json, render_rank_report)

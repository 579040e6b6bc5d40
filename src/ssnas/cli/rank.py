"""`ssnas rank`: score a list of architectures and compare with ground truth.

Parsing and printing only: the three routes (models, a run folder of chunks, a list in memory or
rated by a trained strategy) run in `ssnas.run.rank`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ssnas.cli._common import (
    config_option,
    emit,
    json_option,
    precision_option,
    registry_help,
    skip_corrupt_option,
    space_module_option,
)
from ssnas.cli.bench import metric_option, render_rank_report, table_option
from ssnas.cli.rank_models import models_options, refuse_mixed, render_models_report
from ssnas.errors import UserError
from ssnas.rating.stream import DEFAULT_CHUNK_SIZE
from ssnas.rating import (
    AGGREGATIONS,
    ranker_names,
)
from ssnas.rating.defaults import (
    FALLBACK_RANK,
    RANK_DEFAULTS,
)
from ssnas.run.rank import FolderRequest, RankRequest, rank_folder, rank_listed, rank_models
from ssnas.training.distributed import is_main_process
from ssnas.training.progress import mirror_log_to_stderr

# what only a strategy reads (`ssnas.run.settings.search_config`)
STRATEGY_OPTIONS = ("objective", "data", "preset", "device", "precision", "resume", "epochs", "num_images",
                    "holdout_images", "skip_corrupt")  # fmt: skip


@click.command("rank")
@click.option("--ranker", default=None, metavar="NAME[+NAME...]",
              help=registry_help(f"Label-free ranker on networks at initialisation, or an ensemble joined by '+' "
                                 f"[default: {FALLBACK_RANK.ranker}; "
                                 + ", ".join(f"{d.ranker} on {s}" for s, d in RANK_DEFAULTS.items())
                                 + "; the best measured, see docs/benchmarks.md].", ranker_names()))
@click.option("--aggregate", type=click.Choice(sorted(AGGREGATIONS)), default="mean-rank", show_default=True,
              help="How an ensemble's parts combine (az-nas keeps its own log-rank rule inside).")
@click.option("--strategy", default=None, help="Rate with a trained strategy instead: setn | bossnas | tpe | random.")
@click.option("--space", "space_name", default="nb201", show_default=True, help="Search space.")
@space_module_option()
@click.option("--archs", type=click.Path(path_type=Path), default=None,
              help="File of architectures (one per line, or CSV with an 'arch' column).")
@click.option("--sample", type=int, default=None, help="Rank N non-degenerate architectures sampled with --seed.")
@click.option("--all", "rank_all", is_flag=True, help="Rank every non-degenerate architecture (rankers only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --sample (and the strategy).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder or where scores.csv goes. Rankers write a folder a chunk at a time (memory flat in "
                   "the number of architectures; --resume continues a killed run) [rankers: none, the report only; "
                   "strategies: a new folder each run, runs/rank-STRATEGY-SPACE-sSEED-YYYYmmdd-HHMMSS].")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out: rankers skip the rated chunks, strategies reuse the trained checkpoint.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help=f"Rankers with --out FOLDER: architectures per chunk file, what a kill can lose [{DEFAULT_CHUNK_SIZE}].")
@click.option("--storage", default=None, metavar="URL",
              help="Rankers with --out FOLDER: share the rating through this Optuna storage (journal file, "
                   "sqlite:///x.db, postgresql://...); `ssnas worker --study NAME --storage URL` joins from any machine.")
@click.option("--study", default="ssnas-rating", show_default=True, help="With --storage: the shared rating's study name.")
@click.option("--heartbeat-interval", type=click.IntRange(min=1), default=None,
              help="With --storage: seconds between heartbeats; a killed worker's chunk is retaken after twice this [20].")
@click.option("--objective", default=None, help="Strategies that train with one (setn, tpe/random): training objective [simclr].")
@click.option("--data", default=None, help="Unlabeled images for rankers and strategies: image folder or cifar10 [$SSNAS_DATA].")
@skip_corrupt_option
@click.option("--preset", default="quick", show_default=True, help="Strategies: quick | paper.")
@click.option("--epochs", type=int, default=None, help="Strategies: training epochs [preset].")
@click.option("--num-images", type=int, default=None, help="Strategies: unlabeled training images [preset].")
@click.option("--holdout-images", type=int, default=None, help="Strategies: held-out unlabeled images [preset].")
@click.option("--batch-size", type=int, default=None,
              help=f"Rankers: images per network [{FALLBACK_RANK.batch_size}; "
                   + ", ".join(f"{d.batch_size} on {s}" for s, d in RANK_DEFAULTS.items()) + "]; strategies: training batch size [preset].")
@click.option("--channels", type=int, default=None, help="NB201 network width C (rankers: the proxy network) [preset].")
@click.option("--cells", type=int, default=None, help="NB201 cells per stage N (rankers: the proxy network) [preset].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rankers: processes scoring architectures side by side (threads are split among them).")
@click.option("--rating", multiple=True, help="SETN: label-free rating signal(s), repeatable [preset].")
@click.option("--device", default="auto", show_default=True)
@precision_option
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar.")
@table_option
@metric_option
@models_options
@config_option
@json_option
def rank_command(models: str | None, strategy: str | None, archs: Path | None, sample: int | None, rank_all: bool,
                 out: Path | None, as_json: bool, no_progress: bool, **options: Any) -> None:  # fmt: skip
    """Score architectures and report Kendall, Spearman and top-k against the benchmark,
    next to the parameter-count baseline on the same architectures. With --models, rate any
    PyTorch models (timm, a file of factories) instead: no space, no table."""
    mirror_log_to_stderr(not no_progress and is_main_process())
    bar, request = not no_progress and not as_json, _request(options)
    data, skip_corrupt = options["data"], options["skip_corrupt"]
    if models is not None:  # any PyTorch models: no space, no table
        refuse_mixed(**{"--archs": archs, "--sample": sample, "--all": rank_all, "--strategy": strategy,
                        "--table": options["table_path"], "--channels": options["channels"],
                        "--cells": options["cells"]})  # fmt: skip
        budget = {key: options[key] for key in ("max_params", "max_flops", "max_latency_ms")}
        report = rank_models(models, request, image_size=options["image_size"], budget=budget, data=data,
                             skip_corrupt=skip_corrupt, out=out, bar=bar)  # fmt: skip
        return emit(report, as_json, render_models_report)
    select = _selection(options, strategy, archs, sample, rank_all)
    if strategy is None and out is not None and out.suffix != ".csv":  # a run folder: streamed, resumable
        report = rank_folder(out, request, _folder(select, options), data=data, skip_corrupt=skip_corrupt, bar=bar)
        return emit(report, as_json, render_rank_report if "metric" in report else _render_folder)  # metric: a table
    _refuse_folder_options(options, strategy)
    settings = None if strategy is None else _strategy_settings(strategy, options, bar)
    listed = rank_listed(request, select, strategy=settings, data=data, skip_corrupt=skip_corrupt, out=out, bar=bar)
    if listed is not None:  # None: under torchrun, process 0 reports
        emit(listed, as_json, render_rank_report)


def _request(options: dict[str, Any]) -> RankRequest:
    """The rating's settings; rankers rate on the CPU (--device is a strategy's)."""
    return RankRequest(space=options["space_name"], ranker=options["ranker"], aggregate=options["aggregate"],
                       table=options["table_path"], metric=options["metric"], batch_size=options["batch_size"],
                       channels=options["channels"], cells=options["cells"], seed=options["seed"], device="cpu",
                       workers=options["workers"])  # fmt: skip


def _selection(options: dict[str, Any], strategy: str | None, archs: Path | None, sample: int | None,
               rank_all: bool) -> Path | int | str:  # fmt: skip
    """--archs FILE, --sample N or "all" (--all), refusing the options of --models and mixed routes."""
    if any(options[key] is not None for key in ("image_size", "max_params", "max_flops", "max_latency_ms")):
        raise UserError("--image-size, --max-params, --max-flops and --max-latency-ms apply to --models")
    if options["ranker"] and strategy:
        raise UserError("give --ranker or --strategy, not both")
    if sum(x is not None and x is not False for x in (archs, sample, rank_all or None)) != 1:
        raise UserError("give exactly one of --archs FILE, --sample N, --all or --models SPEC")
    return archs if archs is not None else sample if sample is not None else "all"


def _folder(select: Path | int | str, options: dict[str, Any]) -> FolderRequest:
    if options["storage"] is not None and isinstance(select, Path):
        raise UserError("a shared rating (--storage) rates --all or --sample N: a file of architectures is not "
                        "on every worker's machine")  # fmt: skip
    return FolderRequest(select, options["chunk_size"], options["resume"], options["storage"], options["study"],
                         options["heartbeat_interval"])  # fmt: skip


def _refuse_folder_options(options: dict[str, Any], strategy: str | None) -> None:
    """What only a ranker's run folder of chunks (--out FOLDER) takes."""
    if options["storage"] is not None or options["heartbeat_interval"] is not None:
        raise UserError("--storage shares a ranker's rating into --out FOLDER (a run folder, not a .csv file)")
    if options["chunk_size"] is not None or (options["resume"] and strategy is None):
        raise UserError("--chunk-size and --resume of a ranker need --out FOLDER (a run folder, not a .csv file)")


def _strategy_settings(strategy: str, options: dict[str, Any], bar: bool) -> dict[str, Any]:
    """`search_config`'s settings of a trained strategy's rating (`ssnas.run.rank.rank_listed`)."""
    return {"strategy": strategy, "rating": options["rating"] or None, "progress": bar,
            **{key: options[key] for key in STRATEGY_OPTIONS}}  # fmt: skip


def _render_folder(report: dict[str, Any]) -> None:
    """A run folder rated without a ground-truth table: one line."""
    click.echo(f"{report['ranker']}: {report['count']} architectures rated into {report['out']} "
               f"(scores.csv; no ground-truth table); best: {report['best']['arch']}")  # fmt: skip

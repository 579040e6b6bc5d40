"""`ssnas rank`: score a list of architectures and compare with ground truth."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from ssnas.api import rank_architectures, rank_into_folder, size_baseline
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
from ssnas.cli.rank_models import models_options, rank_models, refuse_mixed
from ssnas.data.datasets import ImageSet, load_dataset
from ssnas.errors import UserError
from ssnas.groundtruth import load_space_table
from ssnas.groundtruth.tables import space_table
from ssnas.paths import DATA_ENV
from ssnas.ranking.report import correlate
from ssnas.ranking.selection import (
    all_architectures,
    read_architectures,
    sample_architectures,
    write_scores,
)
from ssnas.rating.stream import DEFAULT_CHUNK_SIZE
from ssnas.rating import (
    AGGREGATIONS,
    parse_ranker,
    ranker_names,
    threads_per_worker,
)
from ssnas.rating.defaults import (
    FALLBACK_RANK,
    RANK_DEFAULTS,
    rank_defaults,
)
from ssnas.reporting import write_rank_report
from ssnas.run import run_rank, search_config
from ssnas.runfolder import check_out, out_or_new
from ssnas.spaces import create_space
from ssnas.training.distributed import is_main_process
from ssnas.training.progress import LazyProgress, StageProgress, mirror_log_to_stderr


@click.command("rank")
@click.option("--ranker", default=None, metavar="NAME[+NAME...]",
              help=registry_help(f"Label-free ranker on networks at initialisation, or an ensemble joined by '+' "
                                 f"[default: {FALLBACK_RANK.ranker}; "
                                 + ", ".join(f"{d.ranker} on {s}" for s, d in RANK_DEFAULTS.items())
                                 + "; the best measured, see README].", ranker_names()))
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
def rank_command(
    ranker: str | None, aggregate: str, strategy: str | None, space_name: str, archs: Path | None, sample: int | None,
    rank_all: bool, seed: int, out: Path | None, resume: bool, chunk_size: int | None, storage: str | None, study: str,
    heartbeat_interval: int | None, objective: str | None,
    data: str | None, skip_corrupt: bool, preset: str,
    epochs: int | None, num_images: int | None, holdout_images: int | None, batch_size: int | None,
    channels: int | None, cells: int | None, workers: int, rating: tuple[str, ...], device: str, precision: str,
    no_progress: bool, table_path: Path | None, metric: str, as_json: bool, models: str | None, image_size: int | None,
    max_params: float | None, max_flops: float | None, max_latency_ms: float | None,
) -> None:
    """Score architectures and report Kendall, Spearman and top-k against the benchmark,
    next to the parameter-count baseline on the same architectures. With --models, rate any
    PyTorch models (timm, a file of factories) instead: no space, no table."""
    mirror_log_to_stderr(not no_progress and is_main_process())
    if models is not None:  # any PyTorch models: no space, no table (ssnas.cli.rank_models)
        refuse_mixed(**{"--archs": archs, "--sample": sample, "--all": rank_all, "--strategy": strategy,
                        "--table": table_path, "--channels": channels, "--cells": cells})  # fmt: skip
        return rank_models(models, image_size, max_params, max_flops, max_latency_ms, ranker=ranker,
                           aggregate=aggregate, data=data, batch_size=batch_size, seed=seed, out=out, as_json=as_json,
                           no_progress=no_progress,
                           load_images=lambda spec, name: _ranker_images(spec, name, skip_corrupt))  # fmt: skip
    if any(v is not None for v in (image_size, max_params, max_flops, max_latency_ms)):
        raise UserError("--image-size, --max-params, --max-flops and --max-latency-ms apply to --models")
    if ranker and strategy:
        raise UserError("give --ranker or --strategy, not both")
    if sum(x is not None and x is not False for x in (archs, sample, rank_all or None)) != 1:
        raise UserError("give exactly one of --archs FILE, --sample N, --all or --models SPEC")
    if strategy is None and out is not None and out.suffix != ".csv":  # a run folder: streamed, resumable
        if storage is not None and archs is not None:
            raise UserError("a shared rating (--storage) rates --all or --sample N: a file of architectures is not "
                            "on every worker's machine")  # fmt: skip
        return _rank_into_folder(out, archs if archs is not None else sample if sample is not None else "all",
                                 space_name, ranker, aggregate, data, table_path, metric, batch_size, channels, cells,
                                 seed, workers, chunk_size, resume, no_progress, as_json,
                                 (storage, study, heartbeat_interval), skip_corrupt)  # fmt: skip
    if storage is not None or heartbeat_interval is not None:
        raise UserError("--storage shares a ranker's rating into --out FOLDER (a run folder, not a .csv file)")
    if chunk_size is not None or (resume and strategy is None):
        raise UserError("--chunk-size and --resume of a ranker need --out FOLDER (a run folder, not a .csv file)")
    space = create_space(space_name)
    table = load_space_table(space_name, table_path)  # before any work: a space without a table is refused
    if strategy is None:
        if archs is not None:
            selection = read_architectures(space, archs)
        elif sample is not None:
            selection = sample_architectures(space, sample, seed)
        else:
            selection = all_architectures(space)
        name = ranker or rank_defaults(space_name).ranker
        dataset = _ranker_images(data, name, skip_corrupt) if parse_ranker(name, aggregate).needs_images else None
        images = None if dataset is None else dataset.images
        started = time.perf_counter()
        with StageProgress("ranking", len(selection), "architectures", bar=not no_progress and not as_json) as bar:
            ranking = rank_architectures(selection, images, ranker=name, space=space_name, table=None, metric=metric,
                                         batch_size=batch_size, channels=channels, cells=cells, aggregate=aggregate,
                                         seed=seed, workers=workers,
                                         progress=lambda done, total: bar.update(done, force_line=done == total))  # fmt: skip
        scores = ranking.scores
        columns = {c: [r[c] for r in ranking.records] for c in ranking.records[0] if c not in ("name", "score")}
        keys = [arch.key for arch in selection]
        extra = {"seconds_per_arch": ranking.info["seconds_per_arch"], "wall_seconds": time.perf_counter() - started,
                 "proxy_network": ranking.info["proxy_network"], "batch_size": ranking.info["batch_size"],
                 "workers": workers, "nonfinite": ranking.info["nonfinite"],
                 "threads_per_worker": threads_per_worker(workers),
                 "skipped_images": 0 if dataset is None else dataset.num_skipped}  # fmt: skip
    else:
        if rank_all:
            raise UserError("--all is for zero-cost rankers; a strategy rates --archs FILE or --sample N")
        config = search_config(
            space=space_name, strategy=strategy, objective=objective, data=data, preset=preset, seed=seed,
            device=device, precision=precision, resume=resume,
            out=str(out_or_new(out, resume, "rank", strategy, space_name, f"s{seed}")),  # no --out: a new folder
            epochs=epochs, num_images=num_images, holdout_images=holdout_images, batch_size=batch_size,
            channels=channels, cells=cells, rating=rating or None, progress=not no_progress and not as_json,
            table=str(table_path) if table_path else None, skip_corrupt=skip_corrupt,
        )  # fmt: skip
        texts = [a.key for a in read_architectures(space, archs)] if archs is not None else None
        scored, _, skipped = run_rank(config, texts, sample, seed)
        keys = [s.arch.key for s in scored]
        scores = [s.score for s in scored]
        selection = [s.arch for s in scored]
        out = config.run.out_dir
        name = strategy
        extra = {"out": str(out), "skipped_images": skipped}
        columns = {}
    if not is_main_process():  # under torchrun, process 0 writes and reports
        return
    baseline = size_baseline(space, selection) if name != "params" else None
    report = correlate(keys, scores, table, metric, baseline=baseline)  # refusals (too few cells) before any write
    if out is not None:
        write_scores(out / "scores.csv" if out.suffix != ".csv" else out, list(zip(keys, scores)), columns)
    report["ranker"] = name
    report.update(extra)
    if out is not None and out.suffix != ".csv":  # a run folder gets report.html
        write_rank_report(out, name, keys, list(scores), [table.query(key, metric) for key in keys], report)
    emit(report, as_json, render_rank_report)


def _rank_into_folder(
    out: Path, select: Path | int | str, space_name: str, ranker: str | None, aggregate: str, data: str | None,
    table_path: Path | None, metric: str, batch_size: int | None, channels: int | None, cells: int | None, seed: int,
    workers: int, chunk_size: int | None, resume: bool, no_progress: bool, as_json: bool,
    sharing: tuple[str | None, str, int | None], skip_corrupt: bool,
) -> None:
    """Rankers with --out FOLDER: `ssnas.api.rank_into_folder` (chunks, resumable), then the report."""
    table = table_path if table_path is not None else True if space_table(space_name) else None
    name = ranker or rank_defaults(space_name).ranker
    check_out(out, resume)  # before loading images
    spec = _data_spec(data, name) if parse_ranker(name, aggregate).needs_images else None  # data-free: no images
    started = time.perf_counter()
    with LazyProgress("ranking", "architectures", bar=not no_progress and not as_json) as bar:
        done = rank_into_folder(out, spec, select=select, space=space_name, ranker=name, table=table, metric=metric,
                                batch_size=batch_size, channels=channels, cells=cells, aggregate=aggregate, seed=seed,
                                workers=workers, chunk_size=chunk_size, resume=resume, progress=bar.update,
                                storage=sharing[0], study=sharing[1], heartbeat_interval=sharing[2],
                                skip_corrupt=skip_corrupt)  # fmt: skip
    extra = {**done.info, "wall_seconds": time.perf_counter() - started, "threads_per_worker": threads_per_worker(workers),
             "out": str(out)}  # fmt: skip
    if done.correlations is not None:
        emit({**done.correlations, "ranker": name, **extra}, as_json, render_rank_report)
        return
    if not done.info["rated_now"] and not resume:  # pragma: no cover - a fresh rating rates something
        raise UserError(f"nothing was rated into {out}")
    report = {"ranker": name, "count": done.count, "best": {"arch": done.best["name"], "score": done.best["score"]},
              **extra}  # fmt: skip
    emit(report, as_json, lambda r: click.echo(f"{r['ranker']}: {r['count']} architectures rated into {r['out']} "
                                               f"(scores.csv; no ground-truth table); best: {r['best']['arch']}"))  # fmt: skip


def _ranker_images(data: str | None, ranker: str, skip_corrupt: bool) -> ImageSet:
    """The images of --data or $SSNAS_DATA, (N,3,32,32) uint8 (the training split; no labels are used),
    and how many unreadable files --skip-corrupt left out (`num_skipped`)."""
    return load_dataset(_data_spec(data, ranker), skip_corrupt=skip_corrupt)


def _data_spec(data: str | None, ranker: str) -> str:
    """--data or $SSNAS_DATA; a one-line error naming both when neither is given."""
    spec = data or os.environ.get(DATA_ENV)
    if not spec:
        raise UserError(f"ranker {ranker!r} scores networks on images: give --data FOLDER (or set ${DATA_ENV})")
    return spec

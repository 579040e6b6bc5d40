"""`ssnas search`: the main job. Options map one-to-one onto `ssnas.run.SearchConfig`."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from ssnas.cli._common import (
    BATCH, NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT, TEXT, config_option, emit, json_option, precision_option,
)
from ssnas.objectives import OBJECTIVES
from ssnas.run import PRESETS, SPACE_STRATEGIES, SearchConfig, run_search
from ssnas.spaces import SPACES
from ssnas.strategies import STRATEGIES
from ssnas.strategies.proxy import TRIAL_OBJECTIVES
from ssnas.strategies.rating import ALL_SIGNALS
from ssnas.training.distributed import is_main_process
from ssnas.training.loop import OPTIMIZERS
from ssnas.training.progress import mirror_log_to_stderr


@click.command("search")
@click.option("--space", type=click.Choice(SPACES.names()), default="nb201", show_default=True,
              help="Search space (see `ssnas spaces`).")
@click.option("--strategy", type=click.Choice(STRATEGIES.names()), default=None,
              help="How candidates are proposed [per space: " + ", ".join(f"{space} {name}" for space, name in SPACE_STRATEGIES.items()) + "].")
@click.option("--objective", type=click.Choice(OBJECTIVES.names()), default="simclr", show_default=True)
@click.option("--data", type=TEXT, default=None,
              help="Image folder (flat or class subfolders) or cifar10/cifar100 [default: $SSNAS_DATA, else cifar10].")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="quick", show_default=True,
              help="quick: minutes on a 2-core CPU (README: speed); paper: the papers' settings, for a GPU.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=TEXT, default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@precision_option
@click.option("--out", type=TEXT, default="runs/search", show_default=True, help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar.")
@click.option("--num-images", type=POSITIVE, default=None,
              help="Unlabeled training images [quick: 80% of the folder, 512..5,000; tpe/random: 1% of it].")
@click.option("--holdout-images", type=POSITIVE, default=None,
              help="Held-out unlabeled images [quick: 20% of the folder, 256..1,024; tpe/random: 256].")
@click.option("--epochs", type=POSITIVE, default=None, help="Training epochs [preset].")
@click.option("--batch-size", type=BATCH, default=None, help="[preset]")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help="[preset]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="[preset: sgd]")
@click.option("--weight-decay", type=NON_NEGATIVE_FLOAT, default=None, help="[preset]")
@click.option("--channels", type=POSITIVE, default=None, help="Network width C [preset; darts 32].")
@click.option("--cells", type=POSITIVE, default=None, help="Cells per stage N (nb201), cells in all (darts) [preset; darts 8].")
@click.option("--select-num", type=POSITIVE, default=None, help="SETN: candidates rated; BossNAS on nb201: cells in the population [preset].")
@click.option("--evaluator-every", type=POSITIVE, default=None, help="SETN: evaluator step every n weight steps [preset].")
@click.option("--rating", type=click.Choice(ALL_SIGNALS), multiple=True,
              help=f"SETN: label-free rating signal(s), repeatable [preset: {' + '.join(PRESETS['quick']['rating'])}].")
@click.option("--trials", type=POSITIVE, default=None, help="TPE/random: completed trials wanted [preset].")
@click.option("--storage", type=TEXT, default=None, help="TPE/random: journal file, sqlite:///x.db or postgresql://... [run folder journal].")
@click.option("--study", type=TEXT, default=None, help="TPE/random: study name.")
@click.option("--table", type=TEXT, default=None,
              help="Benchmark CSV: look the found cells up in it even when the data is not CIFAR-10 [found automatically for CIFAR-10].")
@click.option("--max-flops", type=float, default=None,
              help="Budget: MFLOPs per 32x32 image (millions of multiply-accumulates, the NAS-Bench-201 convention).")
@click.option("--max-params", type=float, default=None, help="Budget: millions of parameters (10-class network).")
@click.option("--max-latency-ms", type=float, default=None,
              help="Budget: ms per image, batch 1, fp32, this machine's CPU and torch threads (measured, cached per arch).")
@click.option("--ranker", type=TEXT, default=None,
              help="evolution / tpe|random rating trials: init-* signals joined by + (e.g. init-meco+init-synflow) or a ranker name.")
@click.option("--ratings", type=POSITIVE, default=None, help="evolution: architectures rated [100].")
@click.option("--population", type=POSITIVE, default=None, help="evolution: REA population size [20].")
@click.option("--trial-objective", type=click.Choice(TRIAL_OBJECTIVES), default=None,
              help="tpe/random: ssl-proxy (CSNAS: train each trial, the paper's setting) or rating (label-free, no training) [ssl-proxy].")
@config_option
@json_option
def search_command(as_json: bool, no_progress: bool, rating: tuple[str, ...], **options: Any) -> None:
    """Search an architecture without labels and write a run folder.

    The run folder gets config.yaml, search.log, checkpoint.pt, result.json,
    candidates.csv, report.html and (SETN) op_distribution.png. Progress goes to
    search.log, and to stderr when stderr is not a terminal (a bar when it is).
    """
    mirror_log_to_stderr(not no_progress and is_main_process())
    config = SearchConfig(**options, rating=rating or None, progress=not no_progress and not as_json)
    payload = run_search(config)
    if is_main_process():  # under torchrun, one report
        emit(payload, as_json, lambda p: _render(p, config.out))


def _render(payload: dict[str, Any], out: str) -> None:
    console = Console()
    best = payload["best"]
    console.print(f"[bold]best architecture[/bold] {best['arch']}")
    console.print(f"score {best['score']:.4f} from {payload['num_candidates']} candidates in {payload['seconds']:.0f} s")
    truth = payload.get("ground_truth")
    if truth:
        console.print(
            "reference accuracy of this architecture (benchmark table, not measured on your data): "
            + ", ".join(f"{k} {v:.2f}" for k, v in truth.items() if k.startswith("cifar") or k.startswith("imagenet"))
        )
    else:
        console.print("ground truth: none known for this data")
    budget = payload.get("budget")
    if budget:
        console.print("budget: " + ", ".join(
            f"{m} {budget['cost'][m]:.4g} of {limit:g} {budget['units'][m]}" for m, limit in budget["limits"].items()))
    console.print(f"run folder: {out}")

"""`ssnas search`: the main job. Options map one-to-one onto `ssnas.run.SearchConfig`."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from ssnas.cli._common import config_option, emit, json_option
from ssnas.training.distributed import is_main_process
from ssnas.run import PRESETS, SearchConfig, run_search


@click.command("search")
@click.option("--space", default="nb201", show_default=True, help="Search space (see `ssnas spaces`).")
@click.option("--strategy", default="setn", show_default=True, help="setn | tpe | random.")
@click.option("--objective", default="simclr", show_default=True, help="simclr | byol | csnas-nce | supervised.")
@click.option("--data", default=None, help="Image folder or cifar10/cifar100 [default: $SSNAS_DATA, else cifar10].")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="quick", show_default=True,
              help="quick: ~15 min on a 2-core CPU; paper: the papers' settings, for a GPU.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option("--precision", default="auto", show_default=True, help="auto (bf16 on CPU, AMP on CUDA) | fp32 | bf16 | amp.")
@click.option("--out", default="runs/search", show_default=True, help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar.")
@click.option("--num-images", type=int, default=None, help="Unlabeled training images [preset; tpe/random: 1% of the folder].")
@click.option("--holdout-images", type=int, default=None, help="Held-out unlabeled images [preset].")
@click.option("--epochs", type=int, default=None, help="Training epochs [preset].")
@click.option("--batch-size", type=int, default=None, help="[preset]")
@click.option("--lr", type=float, default=None, help="[preset]")
@click.option("--optimizer", default=None, help="sgd | lars | adam | adamw [preset].")
@click.option("--channels", type=int, default=None, help="Network width C [preset; darts 32].")
@click.option("--cells", type=int, default=None, help="Cells per stage N (nb201), cells in all (darts) [preset; darts 8].")
@click.option("--select-num", type=int, default=None, help="SETN: candidates rated; BossNAS on nb201: cells in the population [preset].")
@click.option("--evaluator-every", type=int, default=None, help="SETN: evaluator step every n weight steps [preset].")
@click.option("--rating", multiple=True, help="SETN: label-free rating signal(s), repeatable [preset: meco].")
@click.option("--trials", type=int, default=None, help="TPE/random: completed trials wanted [preset].")
@click.option("--storage", default=None, help="TPE/random: journal file, sqlite:///x.db or postgresql://... [run folder journal].")
@click.option("--study", default=None, help="TPE/random: study name.")
@click.option("--table", default=None, help="Ground-truth CSV for result.json [found automatically].")
@config_option
@json_option
def search_command(as_json: bool, no_progress: bool, rating: tuple[str, ...], **options: Any) -> None:
    """Search an architecture without labels and write a run folder.

    The run folder gets config.yaml, search.log, checkpoint.pt, result.json,
    candidates.csv and op_distribution.png.
    """
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
            "ground truth (NAS-Bench-201): "
            + ", ".join(f"{k} {v:.2f}" for k, v in truth.items() if k.startswith("cifar") or k.startswith("imagenet"))
        )
    console.print(f"run folder: {out}")

"""`ssnas pretrain` and `ssnas probe`: train one architecture with an objective, then probe it.

Options map one-to-one onto `ssnas.pretraining.PretrainConfig` and `ssnas.pretraining.probe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ssnas.cli._common import (
    BATCH, NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT, TEXT, config_option, emit, json_option, out_help,
    fp32_auto_precision_option, precision_option, skip_corrupt_option, space_module_option,
)
from ssnas.training.distributed import is_main_process
from ssnas.objectives import OBJECTIVES
from ssnas.pretraining import PRESETS, PretrainConfig, pretrain, probe
from ssnas.training.loop import OPTIMIZERS
from ssnas.training.progress import mirror_log_to_stderr


@click.command("pretrain")
@click.argument("arch")
@click.option("--space", default="nb201", show_default=True, help="Search space of ARCH.")
@space_module_option()
@click.option("--objective", type=click.Choice(OBJECTIVES.names()), default="simclr", show_default=True)
@click.option("--data", type=TEXT, default="cifar10", show_default=True,
              help="Image folder (its train/ when split) or cifar10/cifar100; labels are used only by 'supervised'.")
@skip_corrupt_option
@click.option("--num-images", type=POSITIVE, default=None, help="Seeded random subset of the training images [all].")
@click.option("--preset", type=click.Choice(PRESETS), default="quick", show_default=True,
              help="quick: CPU-sized (100 epochs of batch 256); paper: the objective's published recipe for a GPU "
                   "(simclr: batch 512, 1000 epochs, LARS; byol likewise), each setting below overrides it.")
@click.option("--epochs", type=POSITIVE, default=None, help="[preset: quick 100, paper 1000]")
@click.option("--batch-size", type=BATCH, default=None, help="[preset: quick 256, paper 512]")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help="Learning rate [the recipe's base lr x batch-size/256].")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="[quick: sgd; paper: lars]")
@click.option("--weight-decay", type=NON_NEGATIVE_FLOAT, default=None, help="[the recipe's]")
@click.option("--warmup-epochs", type=NON_NEGATIVE_FLOAT, default=None, help="[min(10, epochs/10); 0 for supervised]")
@click.option("--channels", type=POSITIVE, default=None, help="Network width C [the space's default, 16 for nb201].")
@click.option("--cells", type=POSITIVE, default=None, help="Cells per stage N (nb201) or layers (darts) [space default].")
@fp32_auto_precision_option
@click.option("--channels-last/--no-channels-last", default=True, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=TEXT, default=None, help=out_help("pretrain-SPACE-OBJECTIVE-sSEED"))
@click.option("--resume", is_flag=True, help="Continue the run in --out (a completed run is not trained again).")
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar.")
@config_option
@json_option
def pretrain_command(as_json: bool, no_progress: bool, **options: Any) -> None:
    """Pretrain the standalone network of ARCH with a (self-supervised) objective.

    Writes config.yaml, checkpoint.pt, model.pt and metrics.json to --out (without it, a new
    folder under runs/); probe the result with `ssnas probe OUT`.
    """
    mirror_log_to_stderr(not no_progress and is_main_process())
    payload = pretrain(PretrainConfig(**options, progress=not no_progress and not as_json))
    if is_main_process():  # under torchrun, one report
        emit(payload, as_json, _render_pretrain)


def _render_pretrain(payload: dict[str, Any]) -> None:
    console = Console()
    if payload.get("already_complete"):
        console.print(f"run in {payload['out']} is already complete; nothing to train")
    loss = f"{payload['final_loss']:.4f}" if payload["history"] or payload["steps"] else "n/a"
    console.print(
        f"[bold]{payload['objective']}[/bold] {payload['steps']} steps, final loss {loss}, "
        f"{payload['images_per_second']:.0f} img/s, {payload['seconds']:.0f} s"
    )
    console.print(f"run folder: {payload['out']}  (next: ssnas probe {payload['out']} --knn)")


@click.command("probe")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--knn", is_flag=True, help="Weighted kNN top-1 (k 200, cosine, T 0.1) [default].")
@click.option("--linear", is_flag=True, help="Linear-probe top-1 (L-BFGS logistic regression).")
@click.option("--data", type=TEXT, default="cifar10", show_default=True,
              help="Labelled data: folder with train/ and test/ class folders, or cifar10/cifar100.")
@skip_corrupt_option
@click.option("--train-images", type=POSITIVE, default=None,
              help="Seeded subset of the train split [all]; the run's --num-images picks its pretraining images.")
@click.option("--test-images", type=POSITIVE, default=None, help="Seeded subset of the test split [all].")
@click.option("--random-init", is_flag=True, help="Probe the same network at its initialisation (the baseline).")
@click.option("--seed", type=int, default=None, help="Subset seed [the run's seed].")
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", type=POSITIVE, default=512, show_default=True, help="Feature-extraction batch.")
@precision_option
@space_module_option()
@config_option
@json_option
def probe_command(run_dir: Path, knn: bool, linear: bool, as_json: bool, **options: Any) -> None:
    """Top-1 of frozen-feature probes of the network pretrained in RUN_DIR."""
    methods = tuple(name for name, wanted in (("knn", knn), ("linear", linear)) if wanted) or ("knn",)
    payload = probe(run_dir, methods=methods, **options)
    emit(payload, as_json, _render_probe)


def _render_probe(payload: dict[str, Any]) -> None:
    console = Console()
    weights = "random initialisation" if payload["random_init"] else f"{payload['objective']} weights"
    console.print(f"{payload['arch']} ({weights})")
    for method, accuracy in payload["accuracy"].items():
        console.print(f"[bold]{method}[/bold] top-1 {100 * accuracy:.2f}%")
    console.print(f"{payload['train_images']} train / {payload['test_images']} test images, {payload['seconds']:.0f} s")

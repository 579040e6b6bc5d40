"""`ssnas train` (supervised retraining of a found architecture), `ssnas finetune` and `ssnas export`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from ssnas.cli._common import (
    BATCH, POSITIVE, POSITIVE_FLOAT, TEXT, config_option, emit, fp32_auto_precision_option, json_option, key_values,
    out_help, precision_option, skip_corrupt_option, space_module_option,
)
from ssnas.errors import UserError
from ssnas.export import FORMATS, export
from ssnas.finetuning import finetune
from ssnas.pretraining import PRESETS
from ssnas.retrain import retrain
from ssnas.training.progress import mirror_log_to_stderr
from ssnas.training.recipes import RECIPES

F = TypeVar("F", bound=Callable[..., Any])


def _space_args(values: tuple[str, ...]) -> dict[str, Any]:
    """`("C=8", "N=1")` -> `{"C": 8, "N": 1}` (values read as YAML scalars)."""
    return key_values(values, "--space-arg", "C=36")


def training_run_options(folder_name: str, precision: Callable[[Any], Any] = precision_option) -> Callable[[F], F]:
    """The options of a command that trains one network into a run folder (`train`, `finetune`)."""
    options = (
        click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N."),
        precision,
        click.option("--max-steps", type=POSITIVE, default=None, help="Stop after this many steps (smoke tests)."),
        click.option("--out", type=TEXT, default=None, help=out_help(folder_name)),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."),
        click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar."),
        config_option,
        json_option,
    )

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


space_option = click.option("--space", default="nb201", show_default=True, help="Search space (see `ssnas spaces`).")
space_arg_option = click.option(
    "--space-arg", "space_arg", multiple=True, metavar="KEY=VALUE",
    help="Space argument, repeatable (nb201: C=16 N=5; darts: C=36 layers=20) [recipe].",
)  # fmt: skip


@click.command("train")
@click.argument("arch")
@space_option
@space_module_option()
@click.option("--recipe", default=None, help=f"{' | '.join(sorted(RECIPES))} [nb201 for nb201, darts-cifar for darts, else cifar].")
@click.option("--data", type=TEXT, default="cifar10", show_default=True, help="cifar10, cifar100, or a labelled folder with train/ and test/.")
@skip_corrupt_option
@click.option("--epochs", type=POSITIVE, default=None, help="[recipe]")
@click.option("--batch-size", type=BATCH, default=None, help="[recipe]")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help="[recipe]")
@space_arg_option
@click.option("--train-images", type=POSITIVE, default=None, help="Train on a seeded subset of this many images [all].")
@click.option("--labels-per-class", type=POSITIVE, default=None,
              help="Train on a seeded, class-balanced subset: this many images per class [all].")
@click.option("--seed", type=int, default=0, show_default=True)
@training_run_options("train-SPACE-sSEED")
def train_command(arch: str, space_arg: tuple[str, ...], out: str | None, no_progress: bool, as_json: bool,
                  **options: Any) -> None:  # fmt: skip
    """Train ARCH from scratch with labels and report its test accuracy.

    ARCH is the architecture's text (NB201 string, DARTS genotype, HyTra layers)
    or a file holding it. The run folder (--out, else a new one under runs/) gets
    config.yaml, checkpoint.pt, model.pt and metrics.json.
    """
    mirror_log_to_stderr(not no_progress)
    payload = retrain(arch, out_dir=out, space_args=_space_args(space_arg), progress=not (no_progress or as_json),
                      **options)  # fmt: skip
    emit(payload, as_json, _render)


def _render(payload: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]test accuracy[/bold] {100 * payload['test_accuracy']:.2f}% "
                  f"({payload['test_images']} test images, {payload['num_classes']} classes)")  # fmt: skip
    console.print(f"{payload['arch']}")
    console.print(f"recipe {payload['recipe']}, {payload['steps']} steps, {payload['num_params']:,} parameters, "
                  f"{payload['seconds']:.0f} s; run folder: {payload['out']}")  # fmt: skip


@click.command("finetune")
@click.argument("run_dir", metavar="RUN")
@click.option("--data", type=TEXT, default="cifar10", show_default=True, help="cifar10, cifar100, or a labelled folder with train/ and test/.")
@click.option("--labels-per-class", type=POSITIVE, default=None,
              help="Fine-tune on a seeded, class-balanced subset: this many labelled images per class [all].")
@skip_corrupt_option
@click.option("--preset", type=click.Choice(PRESETS), default="quick", show_default=True,
              help="quick: batch 128, 60 epochs (a CPU); paper: batch 512 and SimCLR's epochs by the share of labels, "
                   "60 below 10 %, 30 from 10 % on (a GPU).")
@click.option("--epochs", type=POSITIVE, default=None, help="[preset: quick 60; paper 60 or 30]")
@click.option("--batch-size", type=BATCH, default=None, help="[preset: quick 128, paper 512]")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help="[0.05 x batch size / 256]")
@click.option("--seed", type=int, default=0, show_default=True, help="Labelled subset, head and training order.")
@training_run_options("finetune-SPACE-sSEED", fp32_auto_precision_option)
def finetune_command(run_dir: str, out: str | None, no_progress: bool, as_json: bool, **options: Any) -> None:
    """Fine-tune the network of a `ssnas pretrain` RUN folder with labels and report its test accuracy.

    A fresh linear head is fitted on the frozen features first (a linear probe), then the whole
    network trains with SimCLR's fine-tuning recipe. The run folder gets config.yaml,
    checkpoint.pt, model.pt (for `ssnas export`) and metrics.json.
    """
    mirror_log_to_stderr(not no_progress)
    payload = finetune(run_dir, out_dir=out, progress=not (no_progress or as_json), **options)
    emit(payload, as_json, _render_finetune)


def _render_finetune(payload: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]test accuracy[/bold] {100 * payload['test_accuracy']:.2f}% after fine-tuning, "
                  f"{100 * payload['linear_probe_accuracy']:.2f}% with the linear probe alone "
                  f"({payload['train_images']} labelled training images, {payload['test_images']} test images)")
    console.print(f"{payload['arch']} pretrained with {payload['pretrained_with']}; {payload['steps']} steps, "
                  f"{payload['seconds']:.0f} s; run folder: {payload['out']}")  # fmt: skip


@click.command("export")
@click.argument("arch")
@space_option
@space_module_option()
@click.option("--checkpoint", default=None, help="model.pt from `ssnas train` (or its run folder) [fresh weights].")
@click.option("--format", "format_", type=click.Choice(FORMATS), default="torchscript", show_default=True,
              help="torchscript: loads with torch.jit.load, no ssnas; onnx: for onnxruntime and other runtimes "
                   "(checked against PyTorch when onnxruntime is installed); state_dict: weights + JSON sidecar.")
@click.option("--out", type=TEXT, required=True, help="Output file (the sidecar goes to OUT.json).")
@space_arg_option
@click.option("--num-classes", type=click.IntRange(min=2), default=10, show_default=True, help="Without --checkpoint only.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initial weights without --checkpoint.")
@json_option
def export_command(arch: str, format_: str, space_arg: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Export the network of ARCH (eval mode, no auxiliary head) to a file."""
    payload = export(arch, format=format_, space_args=_space_args(space_arg), **options)
    emit(payload, as_json, lambda p: click.echo(f"wrote {p['out']} ({p['format']}) and {p['sidecar']}"))


COMMANDS = (train_command, finetune_command, export_command)

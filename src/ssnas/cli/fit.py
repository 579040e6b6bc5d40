"""`ssnas fit`: from an unlabeled folder and a few labels to an exported model (`ssnas.fitting`)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from ssnas.cli._common import (
    BATCH, POSITIVE, POSITIVE_FLOAT, TEXT, config_option, emit, fp32_auto_precision_option, json_option, key_values,
    out_help, skip_corrupt_option,
)
from ssnas.fitting import LABELS_FLOOR, FitConfig, fit
from ssnas.objectives import OBJECTIVES
from ssnas.pretraining import PRESETS
from ssnas.started import PROCESS_STARTED
from ssnas.training.progress import mirror_log_to_stderr


@click.command("fit")
@click.option("--data", type=TEXT, required=True, help="Unlabeled images: a folder (flat, or with train/ and test/).")
@click.option("--labels", type=TEXT, required=True,
              help="Labelled images: a folder with train/ and test/ class folders, or cifar10.")
@click.option("--labels-per-class", type=click.IntRange(min=LABELS_FLOOR), default=None,
              help="Fine-tune on a seeded, class-balanced subset of this many labelled images per class [all].")
@click.option("--time-budget", type=POSITIVE_FLOAT, default=None, metavar="MINUTES",
              help="Minutes for the whole run, split across the stages as the report states; each training stage "
                   "measures its speed and plans its epochs, at most the preset's [none: the search's default and "
                   "the preset's epochs].")
@click.option("--preset", type=click.Choice(PRESETS), default="quick", show_default=True,
              help="Every stage's settings: quick (a CPU: 100 pretraining epochs of batch 256, fine-tuning batch 128 "
                   "for 60 epochs) or paper (the papers', for a GPU: SimCLR's CIFAR-10 recipe, batch 512 for 1000 "
                   "epochs with LARS; fine-tuning batch 512, 60 or 30 epochs; the search's paper preset).")
@click.option("--space", type=TEXT, default="nb201", show_default=True)
@click.option("--strategy", type=TEXT, default=None, help="Search strategy [the space's default].")
@click.option("--search-option", "search_option", multiple=True, metavar="KEY=VALUE",
              help="Any other `ssnas search` setting, repeatable (ratings=200, population=10).")
@click.option("--objective", type=click.Choice(OBJECTIVES.names()), default="simclr", show_default=True,
              help="Self-supervised pretraining objective.")
@click.option("--pretrain-epochs", type=POSITIVE, default=None, help="[planned from --time-budget, else the preset's]")
@click.option("--finetune-epochs", type=POSITIVE, default=None, help="[planned from --time-budget, else the preset's]")
@click.option("--batch-size", type=BATCH, default=None, help="Pretraining batch [preset: quick 256, paper 512].")
@click.option("--finetune-batch-size", type=BATCH, default=None, help="[preset: quick 128, paper 512]")
@click.option("--channels", type=POSITIVE, default=None, help="Network width C [the space's default, 16 for nb201].")
@click.option("--cells", type=POSITIVE, default=None, help="Cells per stage N (nb201) or layers (darts) [space default].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@fp32_auto_precision_option
@skip_corrupt_option
@click.option("--onnx", is_flag=True, help="Also write model.onnx (checked against PyTorch where onnxruntime is installed).")
@click.option("--out", type=TEXT, default=None, help=out_help("fit-SPACE-sSEED"))
@click.option("--resume", is_flag=True, help="Continue the run in --out: ended stages are kept, the interrupted one resumes.")
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bars.")
@config_option
@json_option
def fit_command(search_option: tuple[str, ...], no_progress: bool, as_json: bool, **options: Any) -> None:
    """Search an architecture without labels, pretrain it self-supervised on every unlabeled image,
    fine-tune it with the labels there are, and export it.

    The run folder gets search/, pretrain/ and finetune/ (each the run folder of its own command),
    model.ts (TorchScript) with model.ts.json (and model.onnx with --onnx), metrics.json, fit.json (each stage's plan and
    outcome) and report.html.
    """
    mirror_log_to_stderr(not no_progress)
    config = FitConfig(**options, search_options=key_values(search_option, "--search-option", "ratings=200"),
                       progress=not (no_progress or as_json))  # fmt: skip
    emit(fit(config, started=PROCESS_STARTED), as_json, _render)  # the budget counts the whole command


def _render(payload: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]test accuracy[/bold] {100 * payload['test_accuracy']:.2f}% after fine-tuning "
                  f"({100 * payload['linear_probe_accuracy']:.2f}% linear probe; {payload['labelled_images']} labelled, "
                  f"{payload['unlabeled_images']} unlabeled images)")  # fmt: skip
    console.print(f"{payload['arch']}")
    exported = payload["export"]
    console.print(f"model {payload['model']}: {exported['params']:,} parameters, {exported['flops'] / 1e6:.1f} M FLOPs, "
                  f"{exported['latency_ms']:.1f} ms per image; {payload['seconds'] / 60:.1f} min; "
                  f"report {payload['out']}/report.html")  # fmt: skip

"""`ssnas rank --models SPEC`: rate any PyTorch models without labels (timm, a file of factories).

The rank command's branch for models: no search space and no ground-truth table. Parsing
and printing here (a table, best first), the work in `ssnas.run.rank.rank_models` (with `--out`
a `scores.csv`, one model per row in the order given, and `report.json`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Column, Table

from ssnas.cli._common import POSITIVE, POSITIVE_FLOAT
from ssnas.errors import UserError
from ssnas.rating.models import TIMM_INSTALL

F = TypeVar("F", bound=Callable[..., Any])

MODELS_HELP = (
    "Rate any PyTorch models instead of a space's architectures (no space, no table): entries joined by ',', "
    f"each timm:NAME (random init, no download; {TIMM_INSTALL}), FILE.py (its MODELS dict of name -> "
    "factory, else the factories named in its __all__) or FILE.py:NAME. A factory takes no arguments and "
    "returns a fresh nn.Module."
)


def models_options(command: F) -> F:
    """The options only `--models` reads: the spec, the rated image size and the budget."""
    options = [
        click.option("--models", default=None, metavar="SPEC", help=MODELS_HELP),
        click.option("--image-size", type=POSITIVE, default=None,
                     help="--models: rate at SxS (the rating batch resized; FLOPs and latency counted at S; "
                          "timm ViTs built for S) [the images' own size, 32 for CIFAR]."),
        click.option("--max-params", type=POSITIVE_FLOAT, default=None,
                     help="--models: budget in millions of parameters; models over a bound are listed, not rated."),
        click.option("--max-flops", type=POSITIVE_FLOAT, default=None,
                     help="--models: budget in MFLOPs (millions of multiply-accumulates, one image, rated size)."),
        click.option("--max-latency-ms", type=POSITIVE_FLOAT, default=None,
                     help="--models: budget in ms per image, batch 1, fp32, this CPU (measured; adds a column)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def refuse_mixed(**given: object) -> None:
    """`--models` rates models, not a space's architectures: options of that route are refused."""
    mixed = [option for option, value in given.items() if value not in (None, False)]
    if mixed:
        raise UserError(f"--models rates models, not architectures: drop {', '.join(mixed)}")


def render_models_report(report: dict[str, Any]) -> None:
    """Models best first: score, each signal, params (M), MFLOPs (and latency); then what the budget left out."""
    records = sorted(report["models"], key=lambda r: -r["score"])
    costs = [key for key in ("params_M", "mflops", "latency_ms") if key in records[0]]
    signals = [key for key in records[0] if key not in ("name", "score", *costs)]
    headers = {"params_M": "params (M)", "mflops": "MFLOPs", "latency_ms": "latency (ms)"}
    names = ("#", "model", "score", *signals, *(headers[c] for c in costs))
    table = Table(*(Column(h, no_wrap=h == "model", overflow="fold") for h in names),
                  title=f"{report['count']} models, {report['ranker']}, {report['batch_size']} images at "
                        f"{report['image_size']}x{report['image_size']}")  # fmt: skip
    for rank, record in enumerate(records, start=1):
        table.add_row(str(rank), record["name"], f"{record['score']:.4g}", *(f"{record[s]:.4g}" for s in signals),
                      *(f"{record[c]:.4g}" for c in costs))  # fmt: skip
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no reason to fold the numbers into 80 columns
        console = Console(width=max(console.width, 160))
    console.print(table)
    for entry in report["excluded"]:
        console.print(f"over the budget, not rated: {entry['name']}: {'; '.join(entry['over'])}")
    console.print(f"best: {report['best']}  ({report['wall_seconds']:.1f} s, "
                  f"{report['seconds_per_model']:.2f} s per model, {report['threads']} threads)")  # fmt: skip

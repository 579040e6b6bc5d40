"""`ssnas rank --models SPEC`: rate any PyTorch models without labels (timm, a file of factories).

The rank command's branch for models: no search space and no ground-truth table. Parsing
here, the work in `ssnas.rating.models`, output a table (best first), and with `--out` a
`scores.csv` (one model per row, in the order given) and `report.json`.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import torch
from rich.console import Console
from rich.table import Column, Table

from ssnas.atomic import write_atomic
from ssnas.cli._common import POSITIVE, POSITIVE_FLOAT, emit
from ssnas.data.datasets import ImageSet
from ssnas.errors import UserError
from ssnas.rating import parse_ranker
from ssnas.rating.defaults import FALLBACK_RANK
from ssnas.rating.models import TIMM_INSTALL
from ssnas.spaces.budget import UNITS, cpu_model
from ssnas.training.progress import StageProgress

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


def rank_models(
    models: str, image_size: int | None, max_params: float | None, max_flops: float | None,
    max_latency_ms: float | None, *, ranker: str | None, aggregate: str, data: str | None, batch_size: int | None,
    seed: int, out: Path | None, as_json: bool, no_progress: bool,
    load_images: Callable[[str | None, str], ImageSet],
) -> None:
    """Rate the models of `models` and report (`load_images(data, ranker)`: the images)."""
    from ssnas.api import rank

    name = ranker or FALLBACK_RANK.ranker
    dataset = load_images(data, name) if parse_ranker(name, aggregate).needs_images else None
    images = None if dataset is None else dataset.images
    started = time.perf_counter()
    with StageProgress("rating", len(models.split(",")), "models", bar=not no_progress and not as_json) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total  # a file entry may hold several factories
            bar.update(done, force_line=done == total)

        ranking = rank(models, images, ranker=name, aggregate=aggregate, batch_size=batch_size, seed=seed,
                       image_size=image_size, max_params=max_params, max_flops=max_flops, max_latency_ms=max_latency_ms,
                       progress=progress)  # fmt: skip
    records, info = ranking.records, ranking.info
    report: dict[str, Any] = {
        "ranker": name, "count": len(records), "best": ranking.best["name"],
        "models": records, "excluded": info["excluded"], "budget": info["budget"],
        "units": {"params_M": UNITS["params"], "mflops": "MFLOPs", "latency_ms": UNITS["latency_ms"]},
        "image_size": info["image_size"], "batch_size": info["batch_size"], "seed": seed, "nonfinite": info["nonfinite"],
        "seconds_per_model": info["seconds_per_model"], "wall_seconds": time.perf_counter() - started,
        "threads": torch.get_num_threads(), "cpu": cpu_model(),
        "skipped_images": 0 if dataset is None else dataset.num_skipped,
    }  # fmt: skip
    if out is not None:
        _write(out, records, report)
    emit(report, as_json, render_models_report)


def refuse_mixed(**given: object) -> None:
    """`--models` rates models, not a space's architectures: options of that route are refused."""
    mixed = [option for option, value in given.items() if value not in (None, False)]
    if mixed:
        raise UserError(f"--models rates models, not architectures: drop {', '.join(mixed)}")


def _write(out: Path, records: list[dict[str, Any]], report: dict[str, Any]) -> None:
    """`scores.csv` (model, score, each signal, costs; the order given) and `report.json` in the folder
    `out`, or only the CSV when `out` ends in .csv."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=["model", *list(records[0])[1:]])
    writer.writeheader()
    writer.writerows({"model": r["name"], **{k: v for k, v in r.items() if k != "name"}} for r in records)
    if out.suffix == ".csv":
        write_atomic(out, text.getvalue())
        return
    write_atomic(out / "scores.csv", text.getvalue())
    write_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")


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

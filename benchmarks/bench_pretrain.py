"""Pretraining benchmark: SimCLR and BYOL on NB201's best cell under a wall-time budget, kNN-probed.

    .venv/bin/python benchmarks/bench_pretrain.py --data ../shared/data/cifar10-jpeg [--minutes 20]

For each objective, with the library's `pretrain` / `probe` (no training code here):
  1. throughput: images/s of short timed runs (after a 2-step warm-up) in fp32 and in
     bf16 + channels_last, and in the main run's precision when that is a third setting;
  2. budget: the number of epochs that fits `--minutes` at the measured images/s of the
     main run's setting (so the cosine schedule still ends at its last step);
  3. pretraining on `--num-images` unlabeled training images (seeded subset);
  4. kNN top-1 (k 200, cosine, T 0.1) and linear-probe top-1 on `--test-images` test images,
     the train features being those of the pretraining images (labels used only here).
The same network at the initialisation the runs started from is the baseline.
Writes JSON to --out (default benchmarks/results/pretrain.json).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ssnas.pretraining import PretrainConfig, pretrain, probe, resolve
from ssnas.training.precision import resolve_device, resolve_precision

BEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
RESULTS = Path(__file__).resolve().parent / "results" / "pretrain.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 folder with train/ and test/ (or cifar10)")
    parser.add_argument("--arch", default=BEST_CELL)
    parser.add_argument("--objectives", nargs="+", default=["simclr", "byol"])
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall time per objective")
    parser.add_argument("--num-images", type=int, default=10_000, help="unlabeled pretraining images")
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", action="append", default=[], metavar="OBJECTIVE=LR",
                        help="override an objective's default lr, e.g. --lr byol=0.3 (repeatable)")
    parser.add_argument("--precision", default="auto", help="precision of the budgeted runs")
    parser.add_argument("--throughput-steps", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="keep the run folders here [a temporary folder]")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def lr_overrides(pairs: list[str]) -> dict[str, float]:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--lr expects OBJECTIVE=LR, got {pair!r}")
        overrides[name] = float(value)
    return overrides


def throughput(base: PretrainConfig, work: Path, steps: int) -> float:
    """Images/s of a `steps`-step run of `base`, after a 2-step warm-up run (kernels, caches)."""
    for tag, max_steps in (("warmup", 2), ("timed", steps)):
        out = work / f"{base.objective}-{base.precision}-{'cl' if base.channels_last else 'nchw'}-{tag}"
        metrics = pretrain(replace(base, epochs=1_000, max_steps=max_steps, out=str(out)))
    return float(metrics["images_per_second"])


def setting_key(precision: str, channels_last: bool, device: torch.device) -> str:
    return f"{resolve_precision(precision, device).name}{'+channels_last' if channels_last else ''}"


def bench_objective(args: argparse.Namespace, objective: str, work: Path, device: torch.device) -> dict[str, Any]:
    base = PretrainConfig(
        arch=args.arch, objective=objective, data=str(args.data), num_images=args.num_images,
        batch_size=args.batch_size, lr=lr_overrides(args.lr).get(objective), channels=args.channels,
        cells=args.cells, precision=args.precision, device=args.device, seed=args.seed, progress=False,
    )  # fmt: skip
    settings = {setting_key(p, cl, device): (p, cl) for p, cl in (("fp32", False), ("bf16", True))}
    main_key = setting_key(args.precision, True, device)
    settings.setdefault(main_key, (args.precision, True))
    speeds = {
        key: round(throughput(replace(base, precision=p, channels_last=cl), work, args.throughput_steps), 1)
        for key, (p, cl) in settings.items()
    }
    steps_per_epoch = args.num_images // min(args.batch_size, args.num_images)
    epochs = max(1, math.floor(0.95 * args.minutes * 60 * speeds[main_key] / (steps_per_epoch * args.batch_size)))
    print(f"{objective}: {speeds} img/s -> {epochs} epochs in {args.minutes} min", flush=True)

    run_dir = work / objective
    metrics = pretrain(replace(base, epochs=epochs, out=str(run_dir)))
    probed = probe(run_dir, data=str(args.data), methods=("knn", "linear"), train_images=args.num_images,
                   test_images=args.test_images, device=args.device)  # fmt: skip
    print(f"{objective}: {metrics['seconds']:.0f} s, loss {metrics['final_loss']:.4f}, {probed['accuracy']}", flush=True)
    config = resolve(replace(base, epochs=epochs))
    return {
        "config": {k: getattr(config, k) for k in ("epochs", "batch_size", "optimizer", "lr", "weight_decay",
                                                   "warmup_epochs", "precision", "channels_last")},
        "throughput_images_per_s": speeds,
        "main_setting": main_key,
        "seconds": round(metrics["seconds"], 1),
        "images_per_s": round(metrics["images_per_second"], 1),
        "history": [round(loss, 5) for loss in metrics["history"]],
        "accuracy": probed["accuracy"],
        "same_images_as_pretraining": probed["same_images_as_pretraining"],
        "run_dir": str(run_dir) if args.work else None,
    }


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "arch": args.arch,
        "channels": args.channels,
        "cells": args.cells,
        "num_images": args.num_images,
        "test_images": args.test_images,
        "minutes_per_objective": args.minutes,
        "probe": "kNN k=200 cosine T=0.1 and L-BFGS linear; train features = the pretraining images",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = {objective: bench_objective(args, objective, work, device) for objective in args.objectives}
        baseline = probe(work / args.objectives[0], data=str(args.data), methods=("knn", "linear"),
                         train_images=args.num_images, test_images=args.test_images, random_init=True,
                         device=args.device)  # fmt: skip
    report["random_init"] = {"accuracy": baseline["accuracy"]}
    report["objectives"] = results
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"random init: {baseline['accuracy']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

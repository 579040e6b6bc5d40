"""What self-supervision adds to label-free rating: the same signals on the same cells, computed

(a) at initialisation (the standalone network, seeded, no training);
(b) on SETN's template (the NB201 supernet, same C and N) trained with SimCLR on unlabeled
    images, one uniformly sampled path per step and the evaluator step (SETN's weight phase),
    each cell rated on its own path;
(c) after a short per-candidate SimCLR warm-up of the standalone network from the same init.

Every condition sees the same held-out batch; budgets (images x epochs / steps, seconds) are
recorded. Cells: a seeded sample of the evaluation half (odd NB201 index, non-degenerate); no
setting here was tuned on them (they are fixed a priori, see the arguments). Writes JSON.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ssl_ablation.py --cells 100 \
        --out benchmarks/results/ssl_ablation.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ssnas.groundtruth.tables import TABLES
from ssnas.data.datasets import load_dataset
from ssnas.data.views import VIEWS
from ssnas.objectives import create_objective
from ssnas.ranking.metrics import bootstrap_ci, kendall_tau, spearman_rho
from ssnas.ranking.selection import all_architectures
from ssnas.rating import AGGREGATIONS, network_signals
from ssnas.spaces import create_space
from ssnas.strategies.base import SearchTask
from ssnas.strategies.setn import SETN, SetnConfig
from ssnas.training.loop import TrainConfig, train
from ssnas.training.seeding import seeded

from bench_rankers import cpu_record

SIGNALS = ("meco", "naswot", "az-expressivity", "az-progressivity", "az-trainability", "zico-ssl")


def combined(columns: dict[str, list[float]], flops: list[float]) -> dict[str, list[float]]:
    """Single signals plus AZ-NAS (log-rank of its three signals and FLOPs)."""
    out = {name: list(values) for name, values in columns.items()}
    parts = [columns["az-expressivity"], columns["az-progressivity"], columns["az-trainability"], flops]
    out["az-nas"] = AGGREGATIONS["log-rank"](parts)
    out["az-nas+zico-ssl"] = AGGREGATIONS["mean-rank"]([out["az-nas"], columns["zico-ssl"]])
    return out


def evaluate(columns: dict[str, list[float]], truth: np.ndarray) -> dict[str, dict[str, object]]:
    finite = {k: np.nan_to_num(np.asarray(v, float), neginf=-1e30, posinf=1e30) for k, v in columns.items()}
    return {
        name: {"spearman": spearman_rho(v, truth), "kendall": kendall_tau(v, truth),
               "spearman_ci95": bootstrap_ci(spearman_rho, v, truth, n_boot=500, seed=0)}
        for name, v in finite.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--sample-seed", type=int, default=1)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--layers", type=int, default=1, help="cells per stage N")
    parser.add_argument("--batch-size", type=int, default=32, help="rating batch")
    parser.add_argument("--template-images", type=int, default=5000)
    parser.add_argument("--template-epochs", type=int, default=3)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--warmup-batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    space = create_space("nb201", C=args.channels, N=args.layers)
    table = TABLES.create("nb201")
    pool = [a for a in all_architectures(space) if table.index_of(a.key) % 2 == 1]
    cells = random.Random(args.sample_seed).sample(pool, args.cells)
    truth = np.array([table.query(a.key, "cifar10_valid") for a in cells])
    flops = [float(space.flops(a)) for a in cells]
    images = load_dataset(args.data).images
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    holdout, train_images = images[order[:1024]], images[order[1024 : 1024 + args.template_images]]
    batch = VIEWS.create("identity")(holdout[: args.batch_size], torch.Generator().manual_seed(args.seed))[0]
    result: dict[str, object] = {"command": "benchmarks/bench_ssl_ablation.py " + " ".join(__import__("sys").argv[1:]),
                                 "cpu": cpu_record(), "cells": [a.key for a in cells], "settings": vars(args) | {"out": str(args.out)},
                                 "conditions": {}}  # fmt: skip

    def run_condition(name: str, budget: dict[str, object], rate) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        columns: dict[str, list[float]] = {s: [] for s in SIGNALS}
        for i, arch in enumerate(cells, start=1):
            for signal, (value, _) in rate(arch).items():
                columns[signal].append(value)
            if i % 10 == 0:
                print(f"{name}: {i}/{len(cells)} cells, {time.perf_counter() - started:.0f} s", flush=True)
        rating_seconds = time.perf_counter() - started
        all_columns = combined(columns, flops)
        result["conditions"][name] = {  # type: ignore[index]
            "budget": budget | {"rating_seconds_per_cell": rating_seconds / len(cells)},
            "metrics": evaluate(all_columns, truth), "columns": all_columns,
        }
        args.out.write_text(json.dumps(result, indent=1, default=float))
        best = {k: round(v["spearman"], 3) for k, v in result["conditions"][name]["metrics"].items()}  # type: ignore[index]
        print(name, best, flush=True)

    def at_init(arch):  # type: ignore[no-untyped-def]
        with seeded(args.seed):
            network = space.build(arch)
        return network_signals(network, SIGNALS, batch, args.seed)

    run_condition("init", {"training": "none"}, at_init)

    fp32 = TrainConfig(epochs=args.template_epochs, batch_size=64, lr=0.05, precision="fp32", progress=False,
                       seed=args.seed, channels_last=False)  # fmt: skip
    task = SearchTask(space=space, images=train_images, holdout_images=holdout, objective="simclr", train=fp32,
                      seed=args.seed)  # fmt: skip
    started = time.perf_counter()
    template = SETN(SetnConfig(supernet={"C": args.channels, "N": args.layers})).train_template(task)
    template_seconds = time.perf_counter() - started
    supernet = template.supernet

    run_condition("setn-template-simclr", {
        "training": f"SETN weight phase, SimCLR, {args.template_images} images x {args.template_epochs} epochs, batch 64",
        "train_seconds": template_seconds, "final_loss": template.result.final_loss,
    }, lambda arch: network_signals(supernet, SIGNALS, batch, args.seed, arch=arch))  # fmt: skip

    warm = replace(fp32, epochs=1, max_steps=args.warmup_steps, batch_size=args.warmup_batch)
    warm_images = train_images[: args.warmup_steps * args.warmup_batch]
    views = VIEWS.create("simclr")

    def warmed(arch):  # type: ignore[no-untyped-def]
        with seeded(args.seed):
            network = space.build(arch)
        train(network, create_objective("simclr"), warm_images, views, warm)
        return network_signals(network, SIGNALS, batch, args.seed)

    run_condition("per-candidate-warmup-simclr", {
        "training": f"per cell: SimCLR, {args.warmup_steps} steps x batch {args.warmup_batch} from the same init",
    }, warmed)  # fmt: skip


if __name__ == "__main__":
    main()

"""Which label-free rating signal ranks NB201 cells best on a SETN template network?

Trains a weight-sharing NB201 supernet without labels (uniform path sampling, as
SETN's weight step), rates a seeded sample of non-degenerate cells with every
signal in `ssnas.strategies.supernet_rating.ALL_SIGNALS`, and reports each signal's (and
each pair's / triple's rank-combination's) Kendall and Spearman vs cifar10_valid,
next to the parameter count. Use a *development* sample seed here and keep the
evaluation seed of bench_setn.py for the final figures.

    python benchmarks/setn_rating_study.py --sample-seed 1 --epochs 10 --out benchmarks/results/setn_study.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import torch

from ssnas.groundtruth.tables import TABLES
from ssnas.data.datasets import load_dataset
from ssnas.ranking.metrics import kendall_tau, spearman_rho
from ssnas.ranking.selection import sample_architectures
from ssnas.spaces import create_space
from ssnas.strategies.base import SearchTask
from ssnas.strategies.supernet_rating import ALL_SIGNALS, RatingConfig, combine_by_rank, rate_architectures
from ssnas.strategies.setn import SETN, SetnConfig
from ssnas.training.loop import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def load_images(args: argparse.Namespace) -> torch.Tensor:
    if args.images_pt:
        return torch.load(args.images_pt)
    return load_dataset(str(args.data), split="train").images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10-jpeg")
    parser.add_argument("--images-pt", type=Path, default=None, help="pre-decoded uint8 (N,3,32,32) tensor file")
    parser.add_argument("--table", type=Path, default=None)
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--holdout", type=int, default=1024)
    parser.add_argument("--objective", default="simclr")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=2)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--sample-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signals", nargs="+", default=[s for s in ALL_SIGNALS if s != "accuracy"])
    parser.add_argument("--rating-batches", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "setn_study.json")
    args = parser.parse_args()

    images = load_images(args)
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(images.shape[0], generator=generator)
    train_images = images[order[: args.train_images]]
    holdout = images[order[args.train_images : args.train_images + args.holdout]]
    space = create_space("nb201")
    table = TABLES.create("nb201", path=args.table)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        warmup_epochs=min(1.0, args.epochs / 10), weight_decay=5e-4, device=args.device,
        precision=args.precision, progress=False, seed=args.seed,
    )
    task = SearchTask(space=space, images=train_images, holdout_images=holdout, objective=args.objective,
                      train=train_config, seed=args.seed)
    setn = SETN(SetnConfig(evaluator_every=0, supernet={"C": args.C, "N": args.N}))
    started = time.perf_counter()
    template = setn.train_template(task)
    train_seconds = time.perf_counter() - started
    archs = sample_architectures(space, args.sample, args.sample_seed)
    columns: dict[str, list[float]] = {}
    rate_seconds: dict[str, float] = {}
    nonfinite: dict[str, int] = {}
    for name in args.signals:
        started = time.perf_counter()
        scored = rate_architectures(space, template.supernet, template.objective, archs, holdout,
                                    RatingConfig(signals=(name,), batches=args.rating_batches), train_config,
                                    seed=args.seed)
        rate_seconds[name] = time.perf_counter() - started
        values = [s.score for s in scored]
        finite = [v for v in values if math.isfinite(v)]
        nonfinite[name] = len(values) - len(finite)
        floor = min(finite) - 1.0 if finite else 0.0
        columns[name] = [v if math.isfinite(v) else floor for v in values]  # non-finite = worst
        print(f"{name}: {rate_seconds[name]:.1f}s, {nonfinite[name]} non-finite", flush=True)
    truth = [table.query(a.key, "cifar10_valid") for a in archs]
    if "params" not in columns:
        columns["params"] = [float(space.num_parameters(a)) for a in archs]
    results = {}
    for size in (1, 2, 3):
        for combo in itertools.combinations(sorted(columns), size):
            values = combine_by_rank({c: columns[c] for c in combo}) if size > 1 else columns[combo[0]]
            if len(set(values)) < 2:
                continue
            results["+".join(combo)] = {"spearman": spearman_rho(values, truth), "kendall": kendall_tau(values, truth)}
    best = sorted(results.items(), key=lambda kv: -kv[1]["spearman"])
    payload = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "train_history": template.result.history,
        "train_seconds": train_seconds,
        "rate_seconds": rate_seconds,
        "nonfinite": nonfinite,
        "images_per_second": template.result.images_per_second,
        "single": {k: v for k, v in results.items() if "+" not in k},
        "top_combinations": dict(best[:25]),
        "archs": [a.key for a in archs],
        "columns": columns,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    print(json.dumps({k: payload[k] for k in ("train_history", "train_seconds", "rate_seconds", "single")}, indent=1))
    print("best combinations:")
    for name, value in best[:15]:
        print(f"  {name:50s} rho {value['spearman']:.3f} tau {value['kendall']:.3f}")


if __name__ == "__main__":
    main()

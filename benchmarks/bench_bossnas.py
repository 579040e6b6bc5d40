"""BossNAS (block-wise ensemble bootstrapping + population-centre rating): three studies.

(i)   nb201: NB201 searched as ONE block (the cell is the path); a seeded sample of
      non-degenerate cells rated by the population centre (BossNAS's rating), and by the
      label-free alternatives computed on the same trained weights (centre distance of the
      target embedding, MeCo, NASWOT); Spearman / Kendall vs cifar10_valid, with the
      parameter count on the same cells beside them.
(ii)  hytra: greedy HyTra search (CIFAR preset, restricted paths); the found architecture
      and an all-ResConv baseline with the same per-layer scales (ResAtt -> ResConv; MACs of
      both reported) retrained identically with labels on a short stated budget; test accuracy.
(iii) nats: the NATS size pipeline end to end: block-wise training, then the additive rating
      of all 32,768 width settings, against nats_sss.csv cifar10_valid (all cells and the
      evaluation half, odd index), next to the width-sum baseline; correlation with FLOPs too.

    python benchmarks/bench_bossnas.py --parts nb201 hytra nats --out benchmarks/results/bossnas.json
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ssnas.groundtruth.tables import TABLES
from ssnas.data.datasets import load_dataset
from ssnas.ranking.metrics import kendall_tau, spearman_rho
from ssnas.ranking.selection import sample_architectures
from ssnas.retrain import retrain
from ssnas.spaces import Architecture, create_space
from ssnas.spaces.cost import count_macs, count_parameters
from ssnas.strategies.base import ScoredArch, SearchTask
from ssnas.strategies.bossnas import BossNAS, additive_score, as_block_space, split_paths
from ssnas.strategies.supernet_rating import combine_by_rank
from ssnas.training.loop import TrainConfig
from ssnas.training.recipes import Recipe

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = ("meco", "naswot")


def make_task(args: argparse.Namespace, space: Any, views: str, work: Path) -> SearchTask:
    """Unlabeled training / held-out images (seeded split of the training folder) and the per-block loop config."""
    dataset = load_dataset(args.data, "train")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(args.seed))
    train_index = order[: args.num_images]
    holdout_index = order[args.num_images : args.num_images + args.holdout_images]
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, warmup_epochs=min(1.0, args.epochs / 10), device=args.device,
        precision=args.precision, seed=args.seed, progress=False, checkpoint_every=200,
    )  # fmt: skip
    return SearchTask(space=space, images=dataset.images[train_index], holdout_images=dataset.images[holdout_index],
                      views=views, train=config, seed=args.seed, out_dir=work)  # fmt: skip


def boss(args: argparse.Namespace, **settings: Any) -> BossNAS:
    return BossNAS(
        neck_width=args.neck_width, hidden_dim=args.hidden_dim, out_dim=args.out_dim,
        pred_hidden_dim=args.hidden_dim, rating_batches=args.rating_batches,
        rating_batch_size=args.rating_batch_size, recal_batch_size=args.rating_batch_size, **settings,
    )  # fmt: skip


def rate_with_training_record(boss: BossNAS, task: SearchTask, archs: list[Architecture]) -> tuple[list[ScoredArch], dict[str, Any]]:
    """`BossNAS.rate`, keeping each block's training record (seconds, images/s, loss history)."""
    blocks = as_block_space(task.space).blocks()
    split = [split_paths(blocks, a) for a in archs]
    needed = [list(dict.fromkeys(s[k] for s in split)) for k in range(len(blocks))]
    run = boss.run_blocks(task, needed)
    scored = [additive_score(a, paths, [r.ratings for r in run.records]) for a, paths in zip(archs, split)]
    training = [
        {"seconds": r.result.seconds, "images_per_second": r.result.images_per_second, "steps": r.result.steps,
         "loss_per_epoch": r.result.history, "paths_rated": len(r.ratings)}
        for r in run.records if r.result is not None
    ]  # fmt: skip
    return scored, {"blocks": training}


def correlations(columns: dict[str, list[float]], truth: list[float]) -> dict[str, dict[str, float]]:
    """Spearman / Kendall per column over the architectures where it is finite (NASWOT's log-det
    can be -inf on narrow networks); `finite` says how many that was."""
    out = {}
    for name, values in columns.items():
        pairs = [(v, t) for v, t in zip(values, truth) if math.isfinite(v)]
        kept, kept_truth = [v for v, _ in pairs], [t for _, t in pairs]
        out[name] = {"spearman": spearman_rho(kept, kept_truth), "kendall": kendall_tau(kept, kept_truth),
                     "finite": len(pairs)}  # fmt: skip
    return out


def rating_columns(scored: list[ScoredArch], signals: tuple[str, ...] = SIGNALS) -> dict[str, list[float]]:
    """Higher = better for every column: BossNAS's score, minus the centre distance, the signals."""
    columns = {"bossnas": [s.score for s in scored], "centre-distance": [-s.details["centre-distance"] for s in scored]}
    for name in signals:
        columns[name] = [s.details[name] for s in scored]
    if len(signals) > 1:  # the signals' mean rank, as SETN's rating combines them
        columns["+".join(signals)] = combine_by_rank({name: columns[name] for name in signals})
    return columns


def part_nb201(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    space = create_space("nb201")
    table = TABLES.create("nb201", path=Path(args.table) if args.table else None)
    archs = sample_architectures(space, args.sample, args.sample_seed)
    task = make_task(args, space, "crop-flip", work)
    started = time.perf_counter()
    strategy = boss(args, population=0, shared_views=True, signals=SIGNALS,
                    supernet={"C": args.nb201_channels, "N": args.nb201_cells})  # fmt: skip
    scored, training = rate_with_training_record(strategy, task, archs)
    seconds = time.perf_counter() - started
    truth = [table.query(a.key, "cifar10_valid") for a in archs]
    columns = rating_columns(scored)
    columns["params (baseline)"] = [float(space.num_parameters(a)) for a in archs]  # type: ignore[attr-defined]
    best = max(range(len(archs)), key=lambda i: scored[i].score)
    return {
        "sample": args.sample, "sample_seed": args.sample_seed, "metric": "cifar10_valid",
        "supernet": {"C": args.nb201_channels, "N": args.nb201_cells}, "seconds": seconds, "training": training,
        "correlations": correlations(columns, truth),
        "top1": {"arch": archs[best].key, "cifar10_valid": truth[best],
                 "cifar10_test": table.query(archs[best].key, "cifar10_test")},
    }  # fmt: skip


def conv_twin(space: Any, arch: Architecture) -> Architecture:
    """The all-ResConv architecture with the same scale on every layer (ResAtt -> ResConv)."""
    return space.make([c.replace("att@", "conv@") for c in arch.choices])


def part_hytra(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    space = create_space("hytra", preset="cifar", restricted=True)
    task = make_task(args, space, "byol", work / "search")
    started = time.perf_counter()
    result = boss(args, population=args.hytra_population).search(task)
    search_seconds = time.perf_counter() - started
    found = result.best.arch
    baseline = conv_twin(space, found)
    if baseline == found:  # already all-ResConv: compare with the ResNet-like 4-4-4-4 schedule instead
        baseline = space.make([f"conv@{s}" for s in (4, 8, 16, 32) for _ in range(4)])
    recipe = Recipe(name="bench-short", reference="short CIFAR schedule for this benchmark (SGD, cosine)",
                    epochs=args.retrain_epochs, batch_size=args.retrain_batch_size, lr=args.retrain_lr,
                    weight_decay=5e-4, nesterov=True, space_args={"preset": "cifar", "restricted": True})  # fmt: skip
    retrained = {}
    for name, arch in (("found", found), ("all-resconv baseline", baseline)):
        net = space.build(arch, num_classes=10)
        payload = retrain(arch.key, space="hytra", recipe=recipe, data=args.data, out_dir=work / name.split()[0],
                          train_images=args.retrain_images, seed=args.seed, device=args.device,
                          precision=args.precision, progress=False)  # fmt: skip
        retrained[name] = {"arch": arch.key, "macs": count_macs(net, torch.zeros(1, 3, 32, 32)),
                           "params": count_parameters(net), "test_accuracy": payload["test_accuracy"],
                           "retrain_seconds": payload["seconds"]}  # fmt: skip
        print(name, retrained[name], flush=True)
    return {
        "search_seconds": search_seconds, "block_paths": result.info["block_paths"],
        "train_history": result.info["train_history"], "rated_per_block": result.info["rated_per_block"],
        "retrain": {"recipe": recipe.to_dict(), "train_images": args.retrain_images, **retrained},
    }  # fmt: skip


def part_nats(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    space = create_space("nats-size")
    archs = list(space.enumerate())  # type: ignore[attr-defined]
    if args.nats_limit:
        archs = archs[:: max(1, len(archs) // args.nats_limit)]
    task = make_task(args, space, "crop-flip", work)
    started = time.perf_counter()
    signals = SIGNALS  # summed over the three blocks, like the BossNAS loss
    scored, training = rate_with_training_record(boss(args, shared_views=True, signals=signals), task, archs)
    seconds = time.perf_counter() - started
    flops = [float(space.flops(a)) for a in archs]  # type: ignore[attr-defined]
    best = max(scored, key=lambda s: s.score)
    table = TABLES.create("nats-sss")
    columns = {**rating_columns(scored, signals), "width-sum (baseline)": [float(sum(map(int, a.choices))) for a in archs]}
    odd = [i for i, a in enumerate(archs) if table.index_of(a.key) % 2 == 1]
    truth = [table.query(a.key, "cifar10_valid") for a in archs]
    return {
        "archs_rated": len(archs), "seconds": seconds, "training": training,
        "vs cifar10_valid, evaluation half (odd index)": correlations(
            {k: [v[i] for i in odd] for k, v in columns.items()}, [truth[i] for i in odd]),
        "vs cifar10_valid, all": correlations(columns, truth),
        "correlation_with_flops": correlations(columns, flops),
        "top1": {"arch": best.arch.key, "flops": space.flops(best.arch),  # type: ignore[attr-defined]
                 "cifar10_valid": table.query(best.arch.key, "cifar10_valid")},
        "best_in_table": max(table.column("cifar10_valid")),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["nb201", "hytra", "nats"], choices=["nb201", "hytra", "nats"])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--table", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-images", type=int, default=25000)
    parser.add_argument("--holdout-images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=10, help="epochs PER BLOCK")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--neck-width", type=int, default=512, help="adapter width (paper 2048)")
    parser.add_argument("--hidden-dim", type=int, default=1024, help="neck / predictor hidden width (paper 4096)")
    parser.add_argument("--out-dim", type=int, default=256)
    parser.add_argument("--rating-batches", type=int, default=4)
    parser.add_argument("--rating-batch-size", type=int, default=256)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--nb201-channels", type=int, default=16)
    parser.add_argument("--nb201-cells", type=int, default=5)
    parser.add_argument("--hytra-population", type=int, default=None, help="candidates rated per block (None = all)")
    parser.add_argument("--retrain-epochs", type=int, default=30)
    parser.add_argument("--retrain-images", type=int, default=None, help="None = all 50k")
    parser.add_argument("--retrain-batch-size", type=int, default=128)
    parser.add_argument("--retrain-lr", type=float, default=0.1)
    parser.add_argument("--nats-limit", type=int, default=0, help="rate every n-th width setting only (0 = all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_bossnas")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bossnas.json")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)  # a benchmark always starts from scratch

    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    parts = {"nb201": part_nb201, "hytra": part_hytra, "nats": part_nats}
    for name in args.parts:
        results[name] = parts[name](args, args.work / name)
        print(name, json.dumps(results[name], indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

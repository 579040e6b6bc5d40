"""Label-free rankers against ground truth, with the development / evaluation protocol.

Cells with an even benchmark index form the development half (every setting is chosen
there), odd indices the evaluation half (figures are reported there). Non-degenerate NB201
cells only. Every leaf signal is computed once per architecture and each ranker (a name or
a '+' ensemble) is combined from those columns, so all rankers see identical networks and
images. Writes JSON: per ranker Spearman, Kendall, top-1% overlap, regret, nDCG@1000 and
pick@100 (expected truth of the ranker's pick among 100 random cells; `ssnas.ranking.metrics`)
against the metric, bootstrap intervals, transfer columns, the size baseline on the same cells,
the perfect ranker's pick@100, and seconds per architecture. benchmarks/top_metrics.py adds the
top-of-ranking figures to results written before they existed, from their stored columns.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_rankers.py --space nb201 --half dev \
        --sample 300 --rankers meco naswot az-nas meco+az-nas --out benchmarks/results/rankers_dev.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ssnas.groundtruth.tables import TABLES
from ssnas.data.datasets import load_dataset
from ssnas.ranking.metrics import bootstrap_ci, kendall_tau, ndcg, pick_at, regret, spearman_rho
from ssnas.ranking.selection import all_architectures
from ssnas.rating import EngineConfig, Scores, parse_ranker, resized, score_architectures
from ssnas.spaces import create_space

SETTINGS = {
    "nb201": {"table": "nb201", "metric": "cifar10_valid", "transfer": ("cifar100_test", "imagenet16_test"),
              "baseline": "params"},
    "nats-size": {"table": "nats-sss", "metric": "cifar10_valid", "transfer": ("cifar100_acc", "imagenet16_acc"),
                  "baseline": "width-sum"},
}
PICK_M = 100  # pick@m: the ranker's pick among m cells drawn at random


def cpu_record() -> dict[str, str]:
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"model": fields.get("Model name", "").strip(), "flags": fields.get("Flags", "").strip(),
            "threads": str(torch.get_num_threads()), "python": platform.python_version(), "torch": torch.__version__}


def top_fraction_overlap(pred: np.ndarray, truth: np.ndarray, fraction: float = 0.01) -> float:
    k = max(1, int(round(fraction * len(pred))))
    return len(set(np.argsort(-pred, kind="stable")[:k]) & set(np.argsort(-truth, kind="stable")[:k])) / k


def top_figures(pred: np.ndarray, truth: np.ndarray, m: int = PICK_M) -> dict[str, float]:
    """nDCG@1000 and, with at least `m` cells, pick@m: the top-of-ranking figures beside the correlations."""
    return {"ndcg": ndcg(pred, truth), **({f"pick_at_{m}": pick_at(pred, truth, m)} if len(pred) >= m else {})}


def report(pred: np.ndarray, table, keys: list[str], settings: dict, n_boot: int) -> dict:
    truth = np.array([table.query(k, settings["metric"]) for k in keys])
    out = {
        "spearman": spearman_rho(pred, truth),
        "spearman_ci95": bootstrap_ci(spearman_rho, pred, truth, n_boot=n_boot, seed=0),
        "kendall": kendall_tau(pred, truth),
        "top1pct_overlap": top_fraction_overlap(pred, truth),
        "regret": regret(pred, truth),
        **top_figures(pred, truth),
    }
    for column in settings["transfer"]:
        out[f"spearman_{column}"] = spearman_rho(pred, np.array([table.query(k, column) for k in keys]))
    return out


def size_baseline(space, archs: list, kind: str) -> np.ndarray:
    """The parameter count ('params') or the sum of the widths ('width-sum') of each architecture."""
    if kind == "params":
        return np.array([float(space.num_parameters(a)) for a in archs])
    return np.array([float(sum(int(w) for w in a.choices)) for a in archs])


def best_ensembles(columns: dict[str, list[float]], table, keys: list[str], settings: dict, size: int) -> dict[str, float]:
    """Spearman of every ensemble of 1..`size` leaves under each aggregation, best first."""
    truth = np.array([table.query(k, settings["metric"]) for k in keys])
    rhos = {}
    for k in range(1, size + 1):
        for parts in itertools.combinations(sorted(columns), k):
            for rule in ("mean-rank", "log-rank") if k > 1 else ("mean-rank",):
                text = "+".join(parts) + (f" ({rule})" if k > 1 else "")
                rhos[text] = spearman_rho(np.array(parse_ranker("+".join(parts), rule).combine(columns)), truth)
    return dict(sorted(rhos.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="nb201", choices=sorted(SETTINGS))
    parser.add_argument("--half", default="dev", choices=("dev", "eval"))
    parser.add_argument("--sample", type=int, default=None, help="seeded sample of the half (default: all)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--rankers", nargs="+", required=True)
    parser.add_argument("--aggregate", default="mean-rank")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="weight-init and image-draw seed")
    parser.add_argument("--space-option", action="append", default=[], help="e.g. C=8 (repeatable)")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg"))
    parser.add_argument("--num-images", type=int, default=1024, help="images loaded (the batch is drawn from them)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shard", default=None, help="i/n: score only archs[i::n] (merge the parts with --merge)")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, help="shard JSON files to merge into --out")
    parser.add_argument("--ensembles", type=int, default=0,
                        help="also rate every ensemble of up to K of the scored leaves (both aggregations) "
                             "and list the best; for choosing on the development half")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = SETTINGS[args.space]
    space = create_space(args.space)
    table = TABLES.create(settings["table"])
    parity = 0 if args.half == "dev" else 1
    pool = [a for a in all_architectures(space) if table.index_of(a.key) % 2 == parity]
    archs = random.Random(args.sample_seed).sample(pool, args.sample) if args.sample else pool
    rankers = [parse_ranker(text, args.aggregate) for text in args.rankers]
    union = "+".join(dict.fromkeys(name for r in rankers for name in r.leaves()))
    options = {k: int(v) for k, v in (o.split("=", 1) for o in args.space_option)}
    started = time.perf_counter()
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        keys = [k for part in parts for k in part["keys"]]
        by_key = {a.key: a for a in archs}
        archs = [by_key[k] for k in keys]
        columns = {name: [v for part in parts for v in part["columns"][name]] for name in parts[0]["columns"]}
        seconds = {name: [v for part in parts for v in part["seconds"][name]] for name in parts[0]["seconds"]}
        scores = Scores(archs, columns, [], seconds)
        wall = max(part.get("wall_seconds", float("nan")) for part in parts)
    else:
        if args.shard:
            index, count = (int(x) for x in args.shard.split("/"))
            archs = archs[index::count]
        config = EngineConfig(batch_size=args.batch_size, seed=args.seed)
        network_space = resized(space, options)
        images = load_dataset(args.data).images
        images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))[: args.num_images]]
        last = [started]

        def progress(done: int, total: int) -> None:
            if time.perf_counter() - last[0] > 30 or done == total:
                last[0] = time.perf_counter()
                rate = (last[0] - started) / max(1, done)
                print(f"{done}/{total} archs, {rate:.3f} s/arch, ETA {rate * (total - done) / 60:.1f} min", flush=True)

        # Score in chunks, saving the raw columns after each, so a stopped run keeps what it did and
        # a rerun with the same arguments continues from it (columns of one arch never depend on others).
        partial = args.out.with_suffix(".partial.json")
        saved = json.loads(partial.read_text()) if partial.exists() else {"keys": [], "columns": {}, "seconds": {}}
        done_keys = set(saved["keys"])
        todo = [a for a in archs if a.key not in done_keys]
        union_ranker = parse_ranker(union, args.aggregate)
        for start in range(0, len(todo), 25):
            chunk = score_architectures(network_space, todo[start : start + 25], union_ranker, images, config,
                                        lambda done, total: progress(start + done + len(done_keys), len(archs)))
            saved["keys"] += [a.key for a in chunk.archs]
            for name in chunk.columns:
                saved["columns"].setdefault(name, []).extend(chunk.columns[name])
                saved["seconds"].setdefault(name, []).extend(chunk.seconds[name])
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(saved, default=float))
        by_key = {a.key: a for a in archs}
        archs = [by_key[k] for k in saved["keys"]]
        scores = Scores(archs, saved["columns"], [], saved["seconds"])
        keys = [a.key for a in archs]
        wall = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    raw = {"keys": keys, "columns": scores.columns, "seconds": scores.seconds, "wall_seconds": wall}
    args.out.with_suffix(".columns.json").write_text(json.dumps(raw, default=float))  # kept even if a report fails
    baseline = size_baseline(space, archs, settings["baseline"])
    truth = np.array([table.query(k, settings["metric"]) for k in keys])
    result = {
        "command": "benchmarks/bench_rankers.py " + " ".join(__import__("sys").argv[1:]),
        "cpu": cpu_record(),
        "space": args.space, "half": args.half, "cells": len(archs), "pool": len(pool),
        "sample": args.sample, "sample_seed": args.sample_seed, "metric": settings["metric"],
        "batch_size": args.batch_size, "seed": args.seed, "space_options": options,
        "wall_seconds": wall,
        "baseline": {"name": settings["baseline"], **report(baseline, table, keys, settings, args.bootstrap)},
        "perfect_ranker": top_figures(truth, truth),
        "rankers": {},
        "columns": scores.columns,
        "seconds": scores.seconds,
        "keys": keys,
    }
    for ranker in rankers:
        pred = np.array(ranker.combine(scores.columns))
        result["rankers"][ranker.text] = {
            **report(pred, table, keys, settings, args.bootstrap),
            "seconds_per_arch": scores.seconds_per_arch(ranker.leaves()),
        }
        r = result["rankers"][ranker.text]
        print(f"{ranker.text:40s} spearman {r['spearman']:.3f} kendall {r['kendall']:.3f} "
              f"top1% {r['top1pct_overlap']:.2f} regret {r['regret']:.2f} ndcg {r['ndcg']:.3f} "
              f"pick@{PICK_M} {r.get(f'pick_at_{PICK_M}', float('nan')):.2f} {r['seconds_per_arch']:.3f} s/arch")
    if args.ensembles:
        result["ensembles"] = best_ensembles(scores.columns, table, keys, settings, args.ensembles)
        for text, rho in list(result["ensembles"].items())[:10]:
            print(f"  ensemble {text:60s} spearman {rho:.3f}")
    b = result["baseline"]
    print(f"{'baseline ' + settings['baseline']:40s} spearman {b['spearman']:.3f} kendall {b['kendall']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()

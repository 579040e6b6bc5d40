"""Which label-free signal, after brief self-supervised training, judges the shortlist of stage 1?

The protocol of issue 20, on NAS-Bench-201 with its even/odd halves (choose on `--half dev`,
report on `--half eval`):

1. the pool: a seeded sample of the half is rated by the stage-1 ranker (the search's rating,
   at `ssnas rank`'s proxy size) and its best `--pool` cells kept: what stage 1 hands over;
2. every pool cell is judged (`ssnas.judging.judge_network`) at every rung of the ladder
   (`objective:image_passes`, e.g. rotation:2000 rotation:8000 simclr:8000 supervised:8000)
   on the judge's network size, training on `--train-images` unlabeled CIFAR-10 train images,
   measured on `--holdout` others;
3. for every (rung, signal), alone and combined with the stage-1 score (mean rank), against
   `cifar10_valid` inside the pool: Spearman, Kendall, and pick regret (the mean gap between the
   best cell of a shortlist and the one the signal picks) over `--draws` random shortlists of k,
   and over the stage-1 top-k shortlist the search would hand over. References on the same
   cells: the stage-1 score, parameter count, NB201's own 12-epoch training (labels).

Every judged cell is saved to `<out>.partial.json` as it finishes, so a rerun continues.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shortlist.py --half dev --threads 1 \
        --out benchmarks/results/shortlist_nb201_dev.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rankers import cpu_record, size_baseline

from ssnas.data.datasets import load_dataset
from ssnas.groundtruth.tables import TABLES
from ssnas.judging import JudgeConfig, judge_network
from ssnas.ranking.metrics import kendall_tau, spearman_rho
from ssnas.ranking.selection import all_architectures
from ssnas.rating import EngineConfig, parse_ranker, resized, score_architectures
from ssnas.rating.aggregate import fractional_ranks, rated_last
from ssnas.rating.engine import build_network
from ssnas.spaces import create_space

METRIC = "cifar10_valid"
SPACES = {  # table, stage-1 ranker, its network and images, judge network, labelled low-fidelity reference
    "nb201": {"table": "nb201", "stage1": "az-nas", "stage1_network": ["C=8", "N=1"], "stage1_batch": 32,
              "judge_network": ["C=16", "N=1"], "size": "params", "low_fidelity": "nb201_hp12"},
    "nats-size": {"table": "nats-sss", "stage1": "az-synflow", "stage1_network": [], "stage1_batch": 16,
                  "judge_network": [], "size": "width-sum", "low_fidelity": None},
}  # fmt: skip


def options(pairs: list[str]) -> dict[str, int]:
    return {k: int(v) for k, v in (p.split("=", 1) for p in pairs)}


def pick_regret(signal: np.ndarray, truth: np.ndarray, k: int, draws: int, seed: int) -> float:
    """Mean over `draws` random k-subsets of (best truth in the subset - truth of the signal's pick)."""
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(draws):
        subset = rng.choice(len(truth), size=k, replace=False)
        gaps.append(truth[subset].max() - truth[subset[np.argmax(signal[subset])]])
    return float(np.mean(gaps))


def shortlist_pick(signal: np.ndarray, stage1: np.ndarray, truth: np.ndarray, k: int) -> dict[str, float]:
    """The search's case: the top-k of the pool by stage 1, picked by `signal`."""
    shortlist = np.argsort(-stage1, kind="stable")[:k]
    pick = shortlist[np.argmax(signal[shortlist])]
    return {"picked": float(truth[pick]), "best": float(truth[shortlist].max()), "regret": float(truth[shortlist].max() - truth[pick])}


def evaluate(signal: np.ndarray, truth: np.ndarray, stage1: np.ndarray, args: argparse.Namespace) -> dict:
    signal = rated_last(signal)
    out = {"spearman": spearman_rho(signal, truth), "kendall": kendall_tau(signal, truth),
           "pool_pick": float(truth[np.argmax(signal)])}  # fmt: skip
    for k in (k for k in args.k if k < len(truth)):  # a shortlist smaller than the pool
        out[f"regret_random_k{k}"] = pick_regret(signal, truth, k, args.draws, seed=k)
        out[f"stage1_top{k}"] = shortlist_pick(signal, stage1, truth, k)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="nb201", choices=sorted(SPACES))
    parser.add_argument("--half", default="dev", choices=("dev", "eval"))
    parser.add_argument("--pool-by", default="stage1", choices=("stage1", "random"),
                        help="stage1: the best of the sample by the stage-1 ranker; random: the first of the sample")
    parser.add_argument("--sample", type=int, default=1000, help="cells of the half rated by stage 1")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--pool", type=int, default=40, help="best cells by stage 1 that are judged")
    parser.add_argument("--stage1", default=None, help="the stage-1 ranker [the space's]")
    parser.add_argument("--stage1-option", action="append", default=None)
    parser.add_argument("--stage1-batch", type=int, default=None)
    parser.add_argument("--judge-option", action="append", default=None, help="judge network size, e.g. C=16 (repeat)")
    parser.add_argument("--ladder", nargs="+", default=["rotation:2000", "rotation:8000", "rotation:32000",
                                                        "simclr:8000", "supervised:8000"])
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--holdout", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report-only", action="store_true", help="only report what the partial file holds")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    setting = SPACES[args.space]
    args.stage1 = args.stage1 or setting["stage1"]
    args.stage1_option = args.stage1_option or setting["stage1_network"]
    args.stage1_batch = args.stage1_batch or setting["stage1_batch"]
    judge_options = options(args.judge_option or setting["judge_network"])
    started = time.perf_counter()
    space = create_space(args.space)
    table = TABLES.create(setting["table"])
    low_fidelity = TABLES.create(setting["low_fidelity"]) if setting["low_fidelity"] else None
    parity = 0 if args.half == "dev" else 1
    half = [a for a in all_architectures(space) if table.index_of(a.key) % 2 == parity]
    sample = random.Random(args.sample_seed).sample(half, args.sample)
    partial = args.out.with_suffix(".partial.json")
    saved = json.loads(partial.read_text()) if partial.exists() else {"stage1": {}, "judged": {}}

    dataset = load_dataset(args.data)
    order = torch.randperm(len(dataset.images), generator=torch.Generator().manual_seed(args.seed))
    train_index = order[: args.train_images]
    holdout_index = order[args.train_images : args.train_images + args.holdout]
    images, holdout = dataset.images[train_index], dataset.images[holdout_index]
    labels = torch.as_tensor(dataset.labels)[train_index] if dataset.labels is not None else None
    holdout_labels = torch.as_tensor(dataset.labels)[holdout_index] if dataset.labels is not None else None

    if not saved["stage1"]:
        ranker = parse_ranker(args.stage1)
        rated = score_architectures(resized(space, options(args.stage1_option)), sample, ranker, dataset.images[order[:1024]],
                                    EngineConfig(batch_size=args.stage1_batch, seed=args.seed))  # fmt: skip
        saved["stage1"] = {a.key: s for a, s in zip(rated.archs, rated.score)}
        saved["stage1_seconds"] = time.perf_counter() - started
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(saved))
        print(f"stage 1: {len(sample)} cells rated in {saved['stage1_seconds']:.0f} s", flush=True)
    if args.pool_by == "stage1":
        pool = sorted(saved["stage1"], key=saved["stage1"].__getitem__, reverse=True)[: args.pool]
    else:
        pool = [a.key for a in sample[: args.pool]]

    judge_space = resized(space, judge_options)
    rungs = [(r.split(":")[0], int(r.split(":")[1])) for r in args.ladder]
    if not args.report_only:
        for number, key in enumerate(pool):
            done = saved["judged"].setdefault(key, {})
            for objective, passes in rungs:
                rung = f"{objective}:{passes}"
                if rung in done:
                    continue
                config = JudgeConfig(objective=objective, image_passes=passes, holdout=args.holdout, seed=args.seed)
                network = build_network(judge_space, space.parse(key), args.seed)
                judged = judge_network(network, images, holdout, config, labels=labels, holdout_labels=holdout_labels,
                                       device="cpu")  # fmt: skip
                done[rung] = {"signals": judged.signals, "seconds": judged.seconds,
                              "passes_per_second": judged.passes_per_second, "curve": judged.losses[:: max(1, len(judged.losses) // 50)]}  # fmt: skip
                partial.write_text(json.dumps(saved))
            elapsed = time.perf_counter() - started
            print(f"{number + 1}/{len(pool)} judged, {elapsed / 60:.1f} min", flush=True)

    keys = [k for k in pool if all(f"{o}:{p}" in saved["judged"].get(k, {}) for o, p in rungs)]
    truth = np.array([table.query(k, METRIC) for k in keys])
    stage1 = np.array([saved["stage1"][k] for k in keys])
    references = {"stage1": stage1, setting["size"]: size_baseline(space, [space.parse(k) for k in keys], setting["size"])}
    if low_fidelity is not None:
        references["hp12-epochs (labels)"] = np.array([low_fidelity.query(k, METRIC) for k in keys])
    size_name = setting["size"]
    stage1_ranks = np.asarray(fractional_ranks(stage1))
    size_ranks = np.asarray(fractional_ranks(references[size_name]))
    references[f"stage1+{size_name}"] = stage1_ranks + size_ranks
    result = {
        "command": "benchmarks/bench_shortlist.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_record(), "space": args.space, "pool_by": args.pool_by, "half": args.half, "metric": METRIC, "sample": args.sample, "pool": len(keys),
        "stage1": {"ranker": args.stage1, "network": options(args.stage1_option), "batch_size": args.stage1_batch},
        "judge_network": judge_options, "train_images": args.train_images, "holdout": args.holdout,
        "pool_truth": {"best": float(truth.max()), "median": float(np.median(truth)), "worst": float(truth.min())},
        "references": {name: evaluate(v, truth, stage1, args) for name, v in references.items()},
        "rungs": {},
    }  # fmt: skip
    for objective, passes in rungs:
        rung = f"{objective}:{passes}"
        records = [saved["judged"][k][rung] for k in keys]
        signals = {name: np.array([r["signals"][name] for r in records]) for name in records[0]["signals"]}
        entry = {"seconds_per_cell": float(np.mean([r["seconds"] for r in records])),
                 "passes_per_second": float(np.mean([r["passes_per_second"] for r in records])), "signals": {}}  # fmt: skip
        for name, values in signals.items():
            if np.all(np.isnan(values)):
                continue
            own = np.asarray(fractional_ranks(rated_last(values)))
            entry["signals"][name] = evaluate(values, truth, stage1, args)
            entry["signals"][name + "+stage1"] = evaluate(own + stage1_ranks, truth, stage1, args)
            entry["signals"][name + "+" + size_name] = evaluate(own + size_ranks, truth, stage1, args)
            entry["signals"][name + "+stage1+" + size_name] = evaluate(own + stage1_ranks + size_ranks, truth, stage1, args)
        result["rungs"][rung] = entry
    result["wall_seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(result, indent=1, default=float))
    k = 10 if 10 in args.k else args.k[-1]
    print(f"pool of {len(keys)}: {METRIC} best {truth.max():.2f} median {np.median(truth):.2f}")
    for name, r in result["references"].items():
        print(f"  {name:34s} spearman {r['spearman']:+.3f} regret@{k} {r[f'regret_random_k{k}']:.2f} top{k} pick {r[f'stage1_top{k}']['picked']:.2f}")
    for rung, entry in result["rungs"].items():
        print(rung, f"{entry['seconds_per_cell']:.1f} s/cell")
        for name, r in sorted(entry["signals"].items(), key=lambda item: -item[1]["spearman"])[:12]:
            print(f"  {name:34s} spearman {r['spearman']:+.3f} regret@{k} {r[f'regret_random_k{k}']:.2f} top{k} pick {r[f'stage1_top{k}']['picked']:.2f}")


if __name__ == "__main__":
    main()

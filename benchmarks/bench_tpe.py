"""CSNAS search benchmark on NAS-Bench-201: TPE vs random search with the same SSL proxy.

    .venv/bin/python benchmarks/bench_tpe.py [--trials 60] [--seeds 0 1 2] [--minutes 60] [--out JSON]

Runs can be split over processes (one core each) and summarised afterwards:

    bench_tpe.py --strategies tpe --threads 1 --out tpe-part.json &
    bench_tpe.py --strategies random --threads 1 --out random-part.json &
    wait; bench_tpe.py --merge tpe-part.json random-part.json --out tpe.json

On the CIFAR-10 JPEG folder, labels dropped. Every trial trains a fresh NB201 network
(C=16, N=5, the benchmark's own) from scratch with the objective on `--images` training
images for `--epochs` epochs and scores it by the objective's loss on `--holdout`
held-out images (the default proxy of `ssnas.strategies.proxy`). TPE (hyperopt's
defaults) and random search each run `--trials` trials per seed, for `--seeds` seeds;
a run starts no new trial after `--minutes` minutes (the running one finishes).

Reports, as JSON (and a summary on stdout):
  * trials per hour of the proxy on this CPU (3600 / mean trial seconds, one worker);
  * per strategy: the found cell's cifar10_test from nb201.csv (mean, std, min, max over
    seeds) and its cifar10_valid;
  * Spearman rho between the proxy score (-loss) and cifar10_valid over the cells each run
    evaluated, and the same for the parameter-count baseline (`space.num_parameters`) on
    the same cells; also over all cells evaluated by any run (scores averaged per cell).
With the same seed, TPE's 20 start-up trials are the very trials random search draws
first (both use Optuna's RandomSampler with that seed), so the two differ only after them.
`--storage-dir DIR` keeps each run's study in `DIR/<strategy>-s<seed>.journal`, so a
killed benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssnas.groundtruth.tables import TABLES
from ssnas.data import load_dataset
from ssnas.ranking.metrics import spearman_rho
from ssnas.spaces import create_space
from ssnas.strategies import SearchTask, create_strategy
from ssnas.training.loop import TrainConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "cifar10-jpeg")
    parser.add_argument("--table", type=Path, default=DATA / "benchmarks" / "nb201.csv")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tpe.json")
    parser.add_argument("--strategies", nargs="+", default=["tpe", "random"])
    parser.add_argument("--trials", type=int, default=60, help="trials per run (the same for every strategy)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds, one run each")
    parser.add_argument("--minutes", type=float, default=60.0, help="per run: start no trial after this")
    parser.add_argument("--images", type=int, default=512, help="unlabeled training images per trial")
    parser.add_argument("--holdout", type=int, default=256, help="held-out images the proxy loss is taken on")
    parser.add_argument("--epochs", type=int, default=10, help="proxy epochs (CSNAS: 10)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--objective", default="simclr")
    parser.add_argument("--proxy-loss", default="holdout", choices=["holdout", "train"])
    parser.add_argument("--n-startup-trials", type=int, default=20, help="TPE random start-up trials")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--precision", default="auto", help="auto = bf16 autocast + channels_last on CPU")
    parser.add_argument("--storage-dir", type=Path, default=None)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="summarise the runs of these earlier outputs instead of running")
    return parser.parse_args()


def correlations(trials: list[dict[str, Any]]) -> dict[str, float | int]:
    """Spearman rho of the proxy score and of the parameter count against cifar10_valid."""
    cells = [t for t in trials if np.isfinite(t["score"])]
    truth = [t["cifar10_valid"] for t in cells]
    out: dict[str, float | int] = {"cells": len(cells)}
    if len(cells) >= 3:
        out["rho_proxy"] = spearman_rho([t["score"] for t in cells], truth)
        out["rho_params"] = spearman_rho([t["params"] for t in cells], truth)
        if all(t.get("train_loss") is not None for t in cells):  # the CSNAS code's objective, same trials
            out["rho_train_loss"] = spearman_rho([-t["train_loss"] for t in cells], truth)
    return out


def train_losses_from_journal(path: Path, study_name: str) -> dict[str, float]:
    """arch -> final-epoch training loss, read from a run's Optuna journal."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(str(path))))
    return {
        t.user_attrs["arch"]: t.user_attrs["details"]["train_loss"]
        for t in study.get_trials(deepcopy=False)
        if "arch" in t.user_attrs and "train_loss" in t.user_attrs.get("details", {})
    }


def summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def summary_of(runs: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    values = [r[key] for r in runs if key in r]
    return summary(values) if values else None


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One search per (strategy, seed); each run's record lists every trial with its ground truth."""
    table = TABLES.create("nb201", path=args.table)
    space = create_space("nb201")
    train_set = load_dataset(str(args.data), "train")
    chosen = train_set.subset(args.images + args.holdout, seed=0).images  # labels are never used
    images, holdout = chosen[: args.images], chosen[args.images :]
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch, lr=args.lr, device="cpu", precision=args.precision, progress=False
    )
    runs: list[dict[str, Any]] = []
    for kind in args.strategies:
        for seed in args.seeds:
            settings: dict[str, Any] = {
                "n_trials": args.trials,
                "timeout": args.minutes * 60,
                "study_name": f"{kind}-s{seed}",
                "proxy_loss": args.proxy_loss,
            }
            if kind == "tpe":
                settings["n_startup_trials"] = args.n_startup_trials
            if args.storage_dir is not None:
                args.storage_dir.mkdir(parents=True, exist_ok=True)
                settings["storage"] = str(args.storage_dir / f"{kind}-s{seed}.journal")
            task = SearchTask(
                space=space, images=images, holdout_images=holdout, objective=args.objective,
                train=config, seed=seed, resume=args.storage_dir is not None,
            )  # fmt: skip
            started = time.perf_counter()
            result = create_strategy(kind, **settings).search(task)
            wall = time.perf_counter() - started
            trials = [
                {"arch": c.arch.key, "score": c.score, "seconds": c.details.get("seconds"),
                 "train_loss": c.details.get("train_loss"),
                 "images_per_second": c.details.get("images_per_second"),
                 "params": space.num_parameters(c.arch), "cifar10_valid": table.query(c.arch, "cifar10_valid")}
                for c in result.candidates
            ]  # fmt: skip
            best = result.best.arch
            run = {
                "strategy": kind,
                "seed": seed,
                "complete": result.info["complete"],
                "failed": result.info["failed"],
                "duplicates": result.info["duplicates"],
                "wall_s": round(wall, 1),
                "best_arch": best.key,
                "best_loss": -result.best.score,
                "best_cifar10_test": table.query(best, "cifar10_test"),
                "best_cifar10_valid": table.query(best, "cifar10_valid"),
                **correlations(trials),
            }
            print(json.dumps(run), flush=True)
            runs.append({**run, "trials": trials})
    return runs


def summarise(runs: list[dict[str, Any]], strategies: list[str]) -> dict[str, Any]:
    """Per strategy: found cells and correlations over seeds; pooled: every evaluated cell once."""
    per_strategy = {}
    for kind in strategies:
        mine = [r for r in runs if r["strategy"] == kind]
        per_strategy[kind] = {
            "runs": len(mine),
            "seeds": [r["seed"] for r in mine],
            "complete_trials": summary([r["complete"] for r in mine]),
            "best_cifar10_test": summary([r["best_cifar10_test"] for r in mine]),
            "best_cifar10_valid": summary([r["best_cifar10_valid"] for r in mine]),
            "rho_proxy": summary_of(mine, "rho_proxy"),
            "rho_params": summary_of(mine, "rho_params"),
            "rho_train_loss": summary_of(mine, "rho_train_loss"),
        }
    pooled: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        for trial in run["trials"]:
            pooled[trial["arch"]].append(trial)
    cells = [
        {"score": float(np.mean([t["score"] for t in ts])), "params": ts[0]["params"],
         "cifar10_valid": ts[0]["cifar10_valid"],
         "train_loss": float(np.mean([t["train_loss"] for t in ts])) if all(t.get("train_loss") is not None for t in ts) else None}
        for ts in pooled.values()
    ]  # fmt: skip
    seconds = [t["seconds"] for r in runs for t in r["trials"] if t.get("seconds") is not None]
    mean_trial = float(np.mean(seconds)) if seconds else float("nan")
    return {
        "trial_seconds_mean": mean_trial,
        "trials_per_hour": 3600.0 / mean_trial if seconds else None,
        "strategies": per_strategy,
        "pooled": correlations(cells),
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("optuna").setLevel(logging.WARNING)
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        runs = [run for part in parts for run in part["runs"]]
        if args.storage_dir is not None:  # parts written before trials kept their training loss
            for run in runs:
                name = f"{run['strategy']}-s{run['seed']}"
                losses = train_losses_from_journal(args.storage_dir / f"{name}.journal", name)
                for trial in run["trials"]:
                    if trial.get("train_loss") is None:
                        trial["train_loss"] = losses.get(trial["arch"])
                run.update(correlations(run["trials"]))
        settings = [part["settings"] for part in parts]
        strategies = list(dict.fromkeys(r["strategy"] for r in runs))
    else:
        runs = run_all(args)
        settings = [{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}]
        strategies = args.strategies
    result_json = {
        "data": str(args.data.resolve()),
        "settings": settings,
        "space": "nb201 (C=16, N=5)",
        **summarise(runs, strategies),
        "runs": runs,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result_json, indent=2) + "\n")
    shown = ("trial_seconds_mean", "trials_per_hour", "strategies", "pooled")
    print(json.dumps({k: result_json[k] for k in shown}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

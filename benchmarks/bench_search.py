"""`ssnas search` end to end on NAS-Bench-201 and NATS size, label-free, with and without budgets.

Every search runs through `ssnas.run.run_search` (what the CLI runs) on the real unlabeled
images, one after the other; the found architecture is looked up in the benchmark tables
afterwards (never during the search). Each finished search is written to the JSON at once,
so a long run can be stopped and the file still holds what was measured.

Parts (`--parts`):

* `defaults`: NB201 with `--strategy` (default evolution) over `--seeds`: found cifar10_test
  per seed, mean, worst, wall time;
* `baselines`: tpe and random with `--trial-objective rating` and as many trials as the
  evolution's ratings (the same rating budget);
* `budgets`: NB201 with --max-flops 50, --max-flops 100 and --max-params 0.5 over `--seeds`: the
  found cell against the best cell of nb201.csv within the same budget (same cost convention);
* `nats`: NATS size with --max-flops 100 over `--seeds`: found cifar10_valid against the best
  within the budget in nats_sss.csv;
* `nats-defaults`: NATS size without a budget over `--seeds` (`--strategy`, the space's default
  rating): found cifar10_valid per seed against the table's best.

    OMP_NUM_THREADS=1 python benchmarks/bench_search.py --seeds 0 1 2 3 4 \\
        --out benchmarks/results/search_cpu.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from ssnas.run import run_search, search_config
from ssnas.spaces import create_space
from ssnas.spaces.budget import Budget, Constraint

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def read_table(path: Path, metric: str) -> dict[str, float]:
    with path.open(newline="") as handle:
        return {row["arch_str"]: float(row[metric]) for row in csv.DictReader(handle)}


def best_within(space_name: str, budget: Budget, table: dict[str, float]) -> dict[str, Any]:
    """The best cell of the table that meets the budget (costs as the search computes them)."""
    constraint = Constraint(create_space(space_name), budget)
    feasible = constraint.feasible_static() or []
    arch = max(feasible, key=lambda a: table[a.key])
    return {"arch": arch.key, "value": table[arch.key], "feasible_cells": len(feasible), "cost": constraint.cost(arch)}


def search(args: argparse.Namespace, work: Path, **settings: Any) -> dict[str, Any]:
    out = work / "_".join(f"{k}-{v}" for k, v in settings.items() if k not in ("space",)).replace("/", "")
    shutil.rmtree(out, ignore_errors=True)
    table = {"nb201": "nb201.csv", "nats-size": "nats_sss.csv"}[settings.get("space", "nb201")]
    config = search_config(data=args.data, out=str(out), progress=False, precision="fp32", holdout_images=256,
                          ranker=args.ranker, table=str(SHARED / "benchmarks" / table), **settings)  # fmt: skip
    started = time.perf_counter()
    payload = run_search(config)
    wall = time.perf_counter() - started
    return {"settings": settings, "arch": payload["best"]["arch"], "wall_seconds": wall,
            "search_seconds": payload["seconds"], "budget": payload.get("budget"),
            "rated": payload["info"].get("rated", payload["info"].get("complete")),
            "seconds_per_rating": payload["info"].get("seconds_per_rating", payload["info"].get("trial_seconds_mean"))}  # fmt: skip


def summary(runs: list[dict[str, Any]], metric: str) -> dict[str, float]:
    values = [r[metric] for r in runs]
    return {"mean": statistics.fmean(values), "worst": min(values), "best": max(values),
            "max_wall_seconds": max(r["wall_seconds"] for r in runs)}  # fmt: skip


def gaps(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and largest gap to the best architecture within the budget."""
    return {"mean_gap": statistics.fmean(r["gap"] for r in runs), "worst_gap": max(r["gap"] for r in runs)}


def machine() -> dict[str, Any]:
    flags = ""
    try:
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")).split(":")[1]
    except (OSError, StopIteration):
        pass
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_line = next((l.split(":", 1)[1].strip() for l in model.splitlines() if l.startswith("Model name")), "?")
    return {"cpu": model_line, "avx512": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED / "cifar10-jpeg"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strategy", default="evolution")
    parser.add_argument("--ratings", type=int, default=300)
    parser.add_argument("--population", type=int, default=30)
    parser.add_argument("--islands", type=int, default=None, help="evolution: independent evolutions pooled [1]")
    parser.add_argument("--final-shortlist", type=int, default=None, help="evolution: best N rated again [0: off]")
    parser.add_argument("--ranker", default=None, help="rating for evolution / rating trials [strategy default]")
    parser.add_argument("--channels", type=int, default=None, help="NB201 rating network width C [16]")
    parser.add_argument("--cells", type=int, default=None, help="NB201 rating network cells per stage N [5]")
    parser.add_argument("--parts", nargs="+", default=["defaults", "baselines", "budgets", "nats"])
    parser.add_argument("--baseline-seeds", type=int, nargs="+", default=None, help="[--seeds]")
    parser.add_argument("--work", default="runs/bench_search")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_cpu.json"))
    args = parser.parse_args()
    out_path, work = Path(args.out), Path(args.work)
    results: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    results.update({"args": vars(args), "machine": machine()})
    for part in args.parts:  # one JSON can hold parts run by several commands: keep each one's settings
        results.setdefault("args_per_part", {})[part] = {**vars(args), "machine": results["machine"]}

    def save() -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2))

    nb201 = read_table(SHARED / "benchmarks" / "nb201.csv", "cifar10_test")
    evolution = {"ratings": args.ratings, "population": args.population,
                 **{k: v for k, v in (("channels", args.channels), ("cells", args.cells), ("islands", args.islands),
                                      ("final_shortlist", args.final_shortlist)) if v is not None}}
    if "defaults" in args.parts:
        runs = []
        for seed in args.seeds:
            run = search(args, work, strategy=args.strategy, seed=seed, **evolution)
            runs.append({**run, "seed": seed, "cifar10_test": nb201[run["arch"]]})
            results["defaults"] = {"strategy": args.strategy, "runs": runs, **summary(runs, "cifar10_test")}
            save()
    if "baselines" in args.parts:
        for strategy in ("tpe", "random"):
            runs = []
            for seed in args.baseline_seeds or args.seeds:
                run = search(args, work, strategy=strategy, seed=seed, trials=args.ratings, trial_objective="rating")
                runs.append({**run, "seed": seed, "cifar10_test": nb201[run["arch"]]})
                results[f"{strategy}_rating"] = {"runs": runs, **summary(runs, "cifar10_test")}
                save()
    if "budgets" in args.parts:
        for bound in (dict(max_flops=50.0), dict(max_flops=100.0), dict(max_params=0.5)):
            best = best_within("nb201", Budget(**bound), nb201)
            name = "_".join(f"{k}{v:g}" for k, v in bound.items())
            runs = []
            for seed in args.seeds:
                run = search(args, work, strategy=args.strategy, seed=seed, **evolution, **bound)
                runs.append({**run, "seed": seed, "cifar10_test": nb201[run["arch"]],
                             "gap": best["value"] - nb201[run["arch"]]})  # fmt: skip
                results.setdefault("budgets", {})[name] = {"runs": runs, "best_within": best,
                                                           **summary(runs, "cifar10_test"), **gaps(runs)}  # fmt: skip
                save()
    if "nats" in args.parts:
        nats = read_table(SHARED / "benchmarks" / "nats_sss.csv", "cifar10_valid")
        bound = dict(max_flops=100.0)
        best = best_within("nats-size", Budget(**bound), nats)
        runs = []
        for seed in args.seeds:
            run = search(args, work, strategy=args.strategy, space="nats-size", seed=seed,
                         ratings=args.ratings, population=args.population, **bound)  # fmt: skip
            runs.append({**run, "seed": seed, "cifar10_valid": nats[run["arch"]], "gap": best["value"] - nats[run["arch"]]})
            results["nats"] = {"runs": runs, "best_within": best, **summary(runs, "cifar10_valid"), **gaps(runs)}
            save()
    if "nats-defaults" in args.parts:
        nats = read_table(SHARED / "benchmarks" / "nats_sss.csv", "cifar10_valid")
        best = max(nats, key=nats.__getitem__)
        runs = []
        for seed in args.seeds:
            plan = {k: evolution[k] for k in ("islands", "final_shortlist") if k in evolution}
            run = search(args, work, strategy=args.strategy, space="nats-size", seed=seed,
                         ratings=args.ratings, population=args.population, **plan)  # fmt: skip
            runs.append({**run, "seed": seed, "cifar10_valid": nats[run["arch"]]})
            results["nats_defaults"] = {"strategy": args.strategy, "runs": runs, **summary(runs, "cifar10_valid"),
                                        "table_best": {"arch": best, "value": nats[best]}}  # fmt: skip
            save()
    save()
    print(json.dumps({k: v for k, v in results.items() if k not in ("args",)}, indent=1)[:4000])


if __name__ == "__main__":
    main()

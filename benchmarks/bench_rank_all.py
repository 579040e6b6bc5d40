"""Rate every non-degenerate architecture of a space with `ssnas rank --all` and time it.

Runs the real command in a subprocess (the user's path: image loading, proxy networks,
worker processes, scores.csv), records its wall time, then reports the ranking on the
evaluation half (odd benchmark index) in the format of `bench_rankers.py`, next to the
size baseline on the same cells. The combined score of an ensemble is formed over all the
rated cells (as a user gets it) and then restricted to the evaluation half.

    .venv/bin/python benchmarks/bench_rank_all.py --space nb201 --workers 2 \
        --out benchmarks/results/rank_all_nb201.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench_rankers import SETTINGS, cpu_record, report, size_baseline
from ssnas.groundtruth.tables import TABLES
from ssnas.ranking.selection import read_scores
from ssnas.spaces import create_space

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="nb201", choices=sorted(SETTINGS))
    parser.add_argument("--ranker", default=None, help="default: ssnas rank's default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "rank_all")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = SETTINGS[args.space]
    scores_path = args.work / f"{args.space}_scores.csv"
    command = [str(Path(sys.executable).parent / "ssnas"), "rank", "--space", args.space, "--all",
               "--workers", str(args.workers), "--data", args.data, "--out", str(scores_path), "--json",
               "--no-progress", *(["--ranker", args.ranker] if args.ranker else [])]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"ssnas rank failed ({done.returncode}): {done.stderr[-2000:]}")
    cli_report = json.loads(done.stdout)
    space = create_space(args.space)
    table = TABLES.create(settings["table"])
    pairs = [(key, score) for key, score in read_scores(scores_path) if table.index_of(key) % 2 == 1]
    keys = [key for key, _ in pairs]
    archs = [space.parse(key) for key in keys]
    baseline = size_baseline(space, archs, settings["baseline"])
    result = {
        "command": "benchmarks/bench_rank_all.py " + " ".join(sys.argv[1:]),
        "ssnas_command": " ".join(command[1:]),
        "cpu": cpu_record(),
        "space": args.space, "ranker": cli_report["ranker"], "cells_rated": cli_report["count"],
        "wall_seconds_subprocess": wall, "wall_seconds_scoring": cli_report.get("wall_seconds"),
        "seconds_per_arch": cli_report.get("seconds_per_arch"), "workers": args.workers,
        "threads_per_worker": cli_report.get("threads_per_worker"),
        "proxy_network": cli_report.get("proxy_network"), "batch_size": cli_report.get("batch_size"),
        "all_cells": {k: cli_report[k] for k in ("spearman_rho", "kendall_tau") if k in cli_report},
        "evaluation_half": {"cells": len(keys), **report(np.array([s for _, s in pairs]), table, keys, settings,
                                                         args.bootstrap)},
        "baseline_evaluation_half": {"name": settings["baseline"], **report(baseline, table, keys, settings,
                                                                            args.bootstrap)},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    e, b = result["evaluation_half"], result["baseline_evaluation_half"]
    print(f"{result['ranker']}: {result['cells_rated']} cells in {wall / 60:.1f} min; evaluation half "
          f"({e['cells']} cells) spearman {e['spearman']:.3f} vs {b['name']} {b['spearman']:.3f}")


if __name__ == "__main__":
    main()

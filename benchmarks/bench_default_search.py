"""`ssnas search` exactly as a user runs it (a subprocess, default settings), over seeds.

For every seed: the whole wall time of the command, the found cell's benchmark accuracy, and for
the two-stage search what stage 1 alone would have returned (the best of its shortlist by the
stage-1 score) and each judged candidate's accuracy, so the judge's effect is visible per seed.
Each finished run is written to the JSON at once.

    .venv/bin/python benchmarks/bench_default_search.py --seeds 5 6 7 8 9 \
        --out benchmarks/results/search_two_stage_nb201.json
    .venv/bin/python benchmarks/bench_default_search.py --seeds 0 1 2 3 4 --extra --max-flops 50 \
        --out benchmarks/results/search_two_stage_flops50.json
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rankers import cpu_record

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TABLES = {"nb201": ("nb201.csv", "cifar10_test"), "nats-size": ("nats_sss.csv", "cifar10_valid")}


def read_table(path: Path, metric: str) -> dict[str, float]:
    with path.open(newline="") as handle:
        return {row["arch_str"]: float(row[metric]) for row in csv.DictReader(handle)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--space", default="nb201", choices=sorted(TABLES))
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `ssnas search` flags (last)")
    parser.add_argument("--data", default=str(SHARED / "cifar10-jpeg"))
    parser.add_argument("--work", default="runs/bench_default_search")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    filename, metric = TABLES[args.space]
    table = read_table(SHARED / "benchmarks" / filename, metric)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    done = {r["seed"] for r in results["runs"]}
    for seed in args.seeds:
        if seed in done:
            continue
        out = Path(args.work) / f"{args.space}_seed{seed}_{'_'.join(args.extra).replace('-', '')}"
        shutil.rmtree(out, ignore_errors=True)
        command = ["ssnas", "search", "--data", args.data, "--space", args.space, "--seed", str(seed), "--out",
                   str(out), "--no-progress", *args.extra]  # fmt: skip
        started = time.perf_counter()
        finished = subprocess.run([sys.executable, "-m", "ssnas.cli.main", *command[1:]], capture_output=True, text=True)
        wall = time.perf_counter() - started
        if finished.returncode != 0:
            raise SystemExit(f"seed {seed} failed: {finished.stderr[-2000:]}")
        payload = json.loads((out / "result.json").read_text())
        run: dict[str, Any] = {"seed": seed, "command": " ".join(command), "wall_seconds": wall,
                               "arch": payload["best"]["arch"], metric: table[payload["best"]["arch"]]}  # fmt: skip
        judge = payload["info"].get("judge")
        if judge:
            shortlist = judge["shortlist"]
            run["stage1_pick"] = {"arch": shortlist[0], metric: table[shortlist[0]]}
            run["shortlist"] = [{"arch": k, metric: table[k]} for k in shortlist]
            run["judged"], run["image_passes"] = judge["judged"], judge["image_passes"]
            run["best_in_shortlist"] = max(table[k] for k in shortlist)
        results["runs"].append(run)
        values = [r[metric] for r in results["runs"]]
        results.update({
            "space": args.space, "metric": metric, "cpu": cpu_record(), "extra": args.extra,
            "mean": statistics.fmean(values), "worst": min(values), "best": max(values),
            "max_wall_seconds": max(r["wall_seconds"] for r in results["runs"]),
        })  # fmt: skip
        if judge:
            stage1 = [r["stage1_pick"][metric] for r in results["runs"]]
            results["stage1_alone"] = {"mean": statistics.fmean(stage1), "worst": min(stage1)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        print(f"seed {seed}: {metric} {run[metric]:.2f} in {wall:.0f} s"
              + (f" (stage 1 alone {run['stage1_pick'][metric]:.2f}, shortlist best {run['best_in_shortlist']:.2f})"
                 if judge else ""), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

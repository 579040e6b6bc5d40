"""`ssnas fit` on CIFAR-10 as a user runs it: wall time against the budget, each stage's plan and time, accuracy.

The unlabeled folder is CIFAR-10's training images (their class folders are not read as labels by
the search or the pretraining); the labelled folder is the CIFAR-10 JPEG folder itself, of which
`--labels-per-class` training images per class are kept (50 = 1 %); the test accuracy is on the
10,000 test images.

    python benchmarks/bench_fit.py --time-budget 10 --labels-per-class 50 --out benchmarks/results/fit_cifar10_10min.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", type=float, default=10.0)
    parser.add_argument("--labels-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_fit")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    command = [str(Path(sys.executable).parent / "ssnas"), "fit", "--data", str(DATA / "train"), "--labels", str(DATA),
               "--labels-per-class", str(args.labels_per_class), "--time-budget", str(args.time_budget), "--seed",
               str(args.seed), "--out", str(args.work), "--no-progress", "--json"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    metrics = json.loads(done.stdout)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")  # fmt: skip
    payload = {
        "what": __doc__.splitlines()[0], "command": "ssnas " + " ".join(command[1:]), "cpu": cpu,
        "threads": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count())), "time_budget_minutes": args.time_budget,
        "wall_seconds": round(wall, 1), "within_budget": wall <= 60 * args.time_budget,
        "arch": metrics["arch"], "search_truth": metrics["search"].get("truth"),
        "test_accuracy": metrics["test_accuracy"], "linear_probe_accuracy": metrics["linear_probe_accuracy"],
        "probes": metrics["probes"], "plans": metrics["plans"], "stage_seconds": metrics["stage_seconds"],
        "pretrain_images": metrics["pretrain"]["num_images"], "pretrain_epochs": metrics["pretrain"]["epochs"],
        "finetune_epochs": metrics["finetune"]["epochs"], "export": metrics["export"],
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(payload, indent=1))
    print(json.dumps({k: payload[k] for k in ("wall_seconds", "test_accuracy", "stage_seconds")}))


if __name__ == "__main__":
    main()

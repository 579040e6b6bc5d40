"""Resident memory of one rating process on NATS-size's narrowest vs widest settings.

Whole NATS-size rated with `--workers 2` saw each worker grow from ~390 to ~685 MB (settings come
in order of the first stage's width). This rates the 48 narrowest and, in a fresh process, the 48
widest settings with the default ranker on one thread, and records VmRSS / VmHWM after every 16,
to tell how much of that growth is the networks' width.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nats_worker_memory.py \\
        --out benchmarks/results/nats_worker_memory.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(end: str, data: str) -> dict[str, object]:
    import torch

    import ssnas
    from ssnas.ranking.selection import all_architectures
    from ssnas.rating import EngineConfig, parse_ranker, rating_job
    from ssnas.spaces import create_space

    torch.set_num_threads(1)
    space = create_space("nats-size")
    archs = all_architectures(space)
    part = archs[:48] if end == "narrow" else archs[-48:]
    images = ssnas.load_images(data, limit=512)
    job = rating_job(space, parse_ranker("az-synflow", "mean-rank"), images, EngineConfig(batch_size=16))

    def memory() -> dict[str, float]:
        lines = Path("/proc/self/status").read_text().splitlines()
        return {line.split(":")[0]: int(line.split()[1]) / 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}

    marks = {"0": memory()}
    for i in range(3):
        job.rate(part[16 * i : 16 * (i + 1)])
        marks[str(16 * (i + 1))] = memory()
    return {"settings": [part[0].key, part[-1].key], "mb_after_rated": marks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "nats_worker_memory.json")
    parser.add_argument("--one", choices=["narrow", "wide"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.data)))
        return
    results = {}
    for end in ("narrow", "wide"):  # each in a fresh process
        done = subprocess.run([sys.executable, __file__, "--one", end, "--data", args.data], capture_output=True,
                              text=True, check=True)  # fmt: skip
        results[end] = json.loads(done.stdout.strip().splitlines()[-1])
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Data-parallel pretraining on CPU: one process with W threads vs `torchrun` with W processes.

    .venv/bin/python benchmarks/bench_ddp.py [--processes 2] [--num-images 4096] [--out JSON]

Both runs train the NB201 best cell (C=16, N=2) with SimCLR, bf16 + channels_last, the same
global batch and epochs, on unlabeled CIFAR-10 JPEGs; the JSON holds images/s and final loss of
each (contrastive negatives stay within a process under torchrun, so the losses differ a little).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def pretrain(launcher: list[str], threads: int, args: argparse.Namespace, out: Path) -> dict[str, object]:
    command = [*launcher, "-m", "ssnas.cli.main", "pretrain", BEST, "--objective", "simclr", "--data", args.data,
               "--num-images", str(args.num_images), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--channels", "16", "--cells", "2", "--out", str(out), "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    metrics = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    return {k: metrics[k] for k in ("images_per_second", "seconds", "final_loss", "steps", "processes")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "train"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--num-images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_ddp")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ddp_cpu.json")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    one = pretrain([sys.executable], args.processes, args, args.work / "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.processes)]
    many = pretrain(torchrun, 1, args, args.work / "torchrun")
    result = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        f"one process, {args.processes} threads": one,
        f"torchrun, {args.processes} processes x 1 thread": many,
        "speedup": many["images_per_second"] / one["images_per_second"],  # type: ignore[operator]
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

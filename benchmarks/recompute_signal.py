"""Recompute one signal's column of a `bench_rankers.py` results file with the current engine.

For a fix that changes one signal only (e.g. SynFlow reading BN running statistics that an earlier
family had moved): the other columns are kept, the named signal is rated again on every cell of
the file with the file's network size, batch size and seed, and the result is written as a
columns file that `bench_rankers.py --merge` turns back into figures.

    python benchmarks/recompute_signal.py benchmarks/results/rankers_nats_eval.json --signal synflow \
        --out runs/rk/nats_eval_synflow.columns.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ssnas.data.datasets import load_dataset
from ssnas.rating import EngineConfig, resized, score_architectures
from ssnas.spaces import create_space

SPACES = {"nb201": "nb201", "nats-size": "nats-size"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--signal", required=True)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg"))
    parser.add_argument("--num-images", type=int, default=1024)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    saved = json.loads(args.results.read_text())
    space = create_space(saved["space"])
    network_space = resized(space, saved.get("space_options") or {})
    archs = [space.parse(key) for key in saved["keys"]]
    images = load_dataset(args.data).images
    images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(saved["seed"]))[: args.num_images]]
    started = time.perf_counter()
    scores = score_architectures(network_space, archs, args.signal, images,
                                 EngineConfig(batch_size=saved["batch_size"], seed=saved["seed"]))  # fmt: skip
    columns = dict(saved["columns"])
    seconds = dict(saved["seconds"])
    before = columns.get(args.signal)
    columns[args.signal], seconds[args.signal] = scores.columns[args.signal], scores.seconds[args.signal]
    changed = sum(a != b for a, b in zip(before or [], columns[args.signal]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"keys": saved["keys"], "columns": columns, "seconds": seconds,
                                    "wall_seconds": saved.get("wall_seconds"), "recomputed": args.signal}))  # fmt: skip
    print(f"{args.signal}: {len(archs)} cells in {time.perf_counter() - started:.0f} s, {changed} values changed")


if __name__ == "__main__":
    main()

"""BossNAS block training with and without the frozen-prefix cache (issue 12 item 4).

    .venv/bin/python benchmarks/bench_bossnas_cache.py [--steps 3] [--rounds 2] [--out PATH]

For the LAST block of each space (the longest frozen prefix), `train(...)` of one `BlockStage`
with the BossNAS objective and path sampler, exactly as `BossNAS.run_blocks` runs it, once with
`BlockStage.cache = PrefixCache()` and once without; images/s of the loop (after one warm-up
step), rounds alternating the two in one process. Settings:

* nats-size: p = 8 fair paths on one shared view pair (BossNAS on NATS);
* hytra (cifar preset, restricted): p = 4 paths, one view pair per path (BossNAS on ImageNet)
  and, for comparison, one shared pair. With one pair per path each view meets each prefix
  (online, EMA target) once, so the cache has nothing to reuse there.

Heads are CPU-sized (neck width 512, hidden 1024, out 256, as benchmarks/bench_bossnas.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from ssnas.data.views import VIEWS, MultiView
from ssnas.objectives import create_objective
from ssnas.spaces import create_space
from ssnas.strategies.bossnas import BlockStage, PathSampler, PrefixCache, default_sampling
from ssnas.training.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=["nats-size", "hytra-pairs", "hytra-shared"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bossnas_cache_cpu.json")
    return parser.parse_args()


SETTINGS: dict[str, dict[str, Any]] = {
    "nats-size": {"space": "nats-size", "kwargs": {}, "paths": None, "shared": True},
    "hytra-pairs": {"space": "hytra", "kwargs": {"restricted": True}, "paths": 4, "shared": False},
    "hytra-shared": {"space": "hytra", "kwargs": {"restricted": True}, "paths": 4, "shared": True},
}


class TimedSampler(PathSampler):
    """BossNAS's path sampler, noting when each step ends."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ends: list[float] = []

    def after_step(self, step: int, batch: Any) -> None:
        self.ends.append(time.perf_counter())


def block_rate(setting: dict[str, Any], cached: bool, steps: int, batch: int) -> tuple[float, dict[str, int]]:
    """Images/s of training the last block of the space on a fixed prefix (the first candidates)."""
    space = create_space(setting["space"], **setting["kwargs"])
    torch.manual_seed(0)
    supernet = space.build_block_supernet()
    fixed: list[tuple[str, ...]] = []
    for k in range(len(space.blocks()) - 1):
        fixed.append(space.block_paths(k, fixed)[0])
    last = len(space.blocks()) - 1
    candidates = space.block_paths(last, fixed)
    count, fair = default_sampling(candidates, setting["paths"])
    images = torch.randint(0, 256, (batch * (steps + 1), 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    pair = VIEWS.create("crop-flip")  # BossNAS's CIFAR views: random crop + flip, two per image
    views = pair
    if not setting["shared"]:
        assert isinstance(pair, MultiView)
        views = MultiView(pair.pipelines * count, pair.mean, pair.std)
    probe = views(images[:2], torch.Generator().manual_seed(1))[0]
    stage = BlockStage(supernet, fixed, candidates, 512, probe)
    stage.cache = PrefixCache() if cached else None
    objective = create_objective("ensemble-byol", hidden_dim=1024, out_dim=256, pred_hidden_dim=1024)
    config = TrainConfig(epochs=1, batch_size=batch, lr=0.05, weight_decay=1e-5, precision="fp32",
                         channels_last=False, device="cpu", progress=False, seed=0, max_steps=steps + 1)  # fmt: skip
    sampler = TimedSampler(candidates, count, fair)
    train(stage, objective, images, views, config, hooks=sampler)
    seconds = sampler.ends[-1] - sampler.ends[0]  # the first step (warm-up) excluded
    cache = stage.cache
    stats = {"paths_per_step": count, "prefix_blocks": len(fixed)}
    if cache is not None:
        stats.update(hits=cache.hits, misses=cache.misses)
    return steps * batch / seconds, stats


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines())}
    report: dict[str, Any] = {
        "command": f"python benchmarks/bench_bossnas_cache.py --steps {args.steps} --rounds {args.rounds} "
                   f"--batch-size {args.batch_size} --threads {args.threads} --settings {' '.join(args.settings)}",
        "cpu": {"model_name": fields.get("Model name", platform.processor()), "flags": fields.get("Flags", "")},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average_before": os.getloadavg(),
        "results": {},
    }  # fmt: skip
    for name in args.settings:
        rounds = []
        for _ in range(args.rounds):
            cached, stats = block_rate(SETTINGS[name], True, args.steps, args.batch_size)
            plain, _ = block_rate(SETTINGS[name], False, args.steps, args.batch_size)
            rounds.append({"cached": cached, "uncached": plain, "speedup": cached / plain})
        report["results"][name] = {
            **stats,
            "cached_images_per_s": round(statistics.median(r["cached"] for r in rounds), 2),
            "uncached_images_per_s": round(statistics.median(r["uncached"] for r in rounds), 2),
            "speedup": round(statistics.median(r["speedup"] for r in rounds), 3),
            "rounds": rounds,
        }
        print(name, report["results"][name], flush=True)
    report["load_average_after"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

"""Where the time of `ssnas rank`'s default NB201 rating goes, and two code versions side by side.

One process rates the same cells as `ssnas rank --all` does (default ranker az-nas-ssl, proxy
network C=8, N=1, 32 CIFAR-10 images, one thread) under cProfile and splits the time into network
building, BN save/restore, forward, backward, and the named kernels. With `--compare SRC`, each
round runs this checkout and the `src/` folder SRC (e.g. a `git worktree` of the commit before)
one after the other, in fresh processes, so both see the same machine load; CPU seconds per
architecture (`time.process_time`) are the figure, wall seconds are given beside them. Also
checks that both versions rate every cell with identical values (==).

    git worktree add /tmp/base HEAD~1
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rating_speed.py --cells 50 --rounds 3 \
        --compare /tmp/base/src --out benchmarks/results/rating_speed_nb201.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# cProfile rows that make up the time of one rating (cumulative time of each)
PARTS = {
    "network build": "engine.py:build_network",
    "BN save/restore": "engine.py:frozen_batch_norm",
    "forward (module calls)": "registry.py:features",
    "backward (autograd engine)": "~:<method 'run_backward' of 'torch._C._EngineBase' objects>",
    "conv2d kernel": "~:<built-in method torch.conv2d>",
    "avg_pool2d kernel": "~:<built-in method torch._C._nn.avg_pool2d>",
    "box-sum pooling (ours)": "ops.py:_box_sum_3x3",
    "batch_norm kernel": "~:<built-in method torch.batch_norm>",
    "AZ-NAS spectra (eigvalsh)": "az_nas.py:_entropy_of_spectrum",
    "AZ-NAS Jacobian sigmas": "az_nas.py:_jacobian_sigma",
    "ZiCo/SNIP statistics": "~:<method 'std' of 'torch._C.TensorBase' objects>",
}


def child(cells: int, seed: int, warmup: int, profile: bool) -> dict:
    """Rate `cells` sampled cells (after `warmup` others) here; returns timings, values, profile."""
    import cProfile
    import pstats
    import time

    import torch

    torch.set_num_threads(1)
    import ssnas
    from ssnas.data.datasets import load_dataset
    from ssnas.ranking.selection import sample_architectures
    from ssnas.rating import EngineConfig, parse_ranker, resized, score_architectures
    from ssnas.spaces import create_space

    images = load_dataset(str(ROOT.parent / "shared" / "data" / "cifar10-jpeg")).images
    space = create_space("nb201")
    archs = sample_architectures(space, cells + warmup, seed)
    proxy = resized(space, {"C": 8, "N": 1})
    ranker = parse_ranker("az-nas-ssl")
    config = EngineConfig(batch_size=32, seed=0)
    score_architectures(proxy, archs[:warmup], ranker, images, config)
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    scores = score_architectures(proxy, archs[warmup:], ranker, images, config)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    result = {"ssnas": ssnas.__file__, "cpu_s_per_arch": cpu / cells, "wall_s_per_arch": wall / cells,
              "columns": scores.columns, "load_after": os.getloadavg()}  # fmt: skip
    if profiler:
        stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
        parts = {}
        for label, pattern in PARTS.items():
            where, name = pattern.split(":", 1)
            picked = [v for (f, _, n), v in stats.items() if n == name and (where == "~" or f.endswith(where))]
            parts[label] = sum(v[3] for v in picked) / cells
        result["profile_s_per_arch"] = parts
    return result


def run(src: Path | None, cells: int, seed: int, warmup: int, profile: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench_rating_speed as b; "
            f"print(json.dumps(b.child({cells}, {seed}, {warmup}, {profile})))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, default=None, help="src/ folder of the other version")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from bench_rankers import cpu_record

    versions = {"this": ROOT / "src", **({"compare": args.compare} if args.compare else {})}
    profiles = {name: run(src, args.cells, args.seed, args.warmup, profile=True) for name, src in versions.items()}
    rounds = []
    for index in range(args.rounds):
        load = os.getloadavg()
        entry = {name: run(src, args.cells, args.seed, args.warmup, profile=False) for name, src in versions.items()}
        entry["load_before"] = load
        rounds.append(entry)
        print(f"round {index}: " + ", ".join(f"{n} {e['cpu_s_per_arch']:.4f} cpu-s/arch ({e['wall_s_per_arch']:.4f} wall)"
                                             for n, e in entry.items() if isinstance(e, dict)), flush=True)  # fmt: skip
    identical = all(r["this"]["columns"] == r[n]["columns"] for r in [*rounds, profiles] for n in versions)
    summary = {
        name: {"cpu_s_per_arch": sorted(r[name]["cpu_s_per_arch"] for r in rounds),
               "wall_s_per_arch": sorted(r[name]["wall_s_per_arch"] for r in rounds), "ssnas": profiles[name]["ssnas"],
               "profile_s_per_arch": profiles[name]["profile_s_per_arch"],
               "profiled_cpu_s_per_arch": profiles[name]["cpu_s_per_arch"]}
        for name in versions
    }  # fmt: skip
    result = {"command": "benchmarks/bench_rating_speed.py " + " ".join(sys.argv[1:]), "cpu": cpu_record(),
              "cells": args.cells, "ranker": "az-nas-ssl", "network": {"C": 8, "N": 1}, "batch_size": 32, "threads": 1,
              "values_identical": identical, "summary": summary,
              "load": [[r["load_before"], r["this"]["load_after"]] for r in rounds],
              "note": "the profile is a separate run under cProfile (slower); the rounds are the timing. CPU seconds "
                      "are the figure: the machine is shared, so wall time depends on the load"}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("cpu",)}, indent=1))


if __name__ == "__main__":
    main()

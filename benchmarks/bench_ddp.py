"""Data-parallel training on CPU: processes vs threads, and DistributedDataParallel vs ssnas's averaging.

    .venv/bin/python benchmarks/bench_ddp.py [--processes 2] [--num-images 4096] [--out JSON]

Part 1 (`pretrain`): the NB201 best cell (C=16, N=2) trained with SimCLR, fp32 + channels_last,
the same global batch and epochs on unlabeled CIFAR-10 JPEGs, by one process with W threads and
by `torchrun` with W processes x 1 thread. Under torchrun the objective is the global batch's
(gathered negatives, global-batch BatchNorm), so both runs optimise the same loss.

Part 2 (`averaging`, run under torchrun by this script): SETN's weight step on the NB201
supernet (one uniformly sampled path per step, so most parameters get no gradient) for
`--ddp-steps` steps, once with ssnas's averaging (one flat all-reduce after backward) and once
with `torch.nn.parallel.DistributedDataParallel(find_unused_parameters=True)` wrapping the loss,
which all-reduces buckets while backward still runs; both inside the same global-batch context,
from the same start. Reported: seconds per step of each, and the largest weight difference
between the two after the steps (equality).

The JSON also records the CPU (lscpu model and flags) and the load average, because the machine
is shared: ratios measured in one run are the figures to read, not absolute speeds.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def pretrain(launcher: list[str], threads: int, args: argparse.Namespace, out: Path) -> dict[str, object]:
    command = [*launcher, "-m", "ssnas.cli.main", "pretrain", BEST, "--objective", "simclr", "--data", args.data,
               "--num-images", str(args.num_images), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--channels", "16", "--cells", "2", "--precision", "fp32", "--out", str(out), "--no-progress",
               "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    metrics = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    return {k: metrics[k] for k in ("images_per_second", "seconds", "final_loss", "steps", "processes")}


def averaging_worker(steps: int, batch_size: int, out: Path) -> None:
    """Under torchrun: SETN weight steps with ssnas's averaging, then with DDP; process 0 writes JSON."""
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    from ssnas.objectives import Batch, create_objective
    from ssnas.objectives.global_batch import across_processes
    from ssnas.spaces import create_space
    from ssnas.training.distributed import process_group
    from ssnas.training.seeding import seeded

    torch.set_num_threads(1)
    group = process_group()
    assert group is not None, "run under torchrun"
    space = create_space("nb201", C=16, N=2)
    generator = torch.Generator().manual_seed(0)
    views = [torch.randn(batch_size, 3, 32, 32, generator=generator) for _ in range(2)]  # (B,3,32,32)
    views = [group.shard(v) for v in views]  # (B/W,3,32,32)
    options = [list(o) for o in space.choices().values()]
    archs = [space.make([o[int(torch.randint(len(o), (1,), generator=generator))] for o in options]) for _ in range(steps)]

    class Step(nn.Module):
        """The loss of one step as a module, so DDP's hooks see every parameter it trains."""

        def __init__(self, model: nn.Module, objective: nn.Module) -> None:
            super().__init__()
            self.model, self.objective = model, objective

        def forward(self, arch: Any) -> torch.Tensor:
            return self.objective(self.model, Batch(views, torch.arange(views[0].shape[0])), arch=arch)

    def build() -> Step:
        with seeded(0):
            model = space.build_supernet()
            objective = create_objective("simclr", hidden_dim=256, out_dim=64)
            objective.setup(model, model.feature_dim, batch_size)
        return Step(model, objective)

    results: dict[str, Any] = {}
    finals = {}
    for mode in ("ssnas averaging", "DistributedDataParallel"):
        step_module = build()
        runner = step_module
        if mode == "DistributedDataParallel":
            runner = DistributedDataParallel(step_module, find_unused_parameters=True, broadcast_buffers=False)
        optimizer = torch.optim.SGD(step_module.parameters(), lr=0.05, momentum=0.9)
        parameters = [p for p in step_module.parameters() if p.requires_grad]
        group.barrier()
        times = []
        with across_processes(group, [step_module]):
            for arch in archs:
                started = time.perf_counter()
                loss = runner(arch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if mode == "ssnas averaging":
                    group.average_gradients(parameters)
                optimizer.step()
                times.append(time.perf_counter() - started)
        warm = times[1:] or times
        results[mode] = {"seconds_per_step_mean": sum(warm) / len(warm), "seconds_per_step_min": min(warm),
                         "steps": len(times), "final_loss": group.mean(float(loss.detach()))}  # fmt: skip
        finals[mode] = {k: v.detach().clone() for k, v in step_module.state_dict().items()}
    a, b = finals.values()
    results["max_weight_difference"] = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    results["ddp_over_ssnas_time"] = (
        results["DistributedDataParallel"]["seconds_per_step_mean"] / results["ssnas averaging"]["seconds_per_step_mean"]
    )
    if group.is_main:
        out.write_text(json.dumps(results, indent=2))


def averaging(args: argparse.Namespace) -> dict[str, Any]:
    out = args.work / "averaging.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.processes),
               str(Path(__file__).resolve()), "--averaging-worker", str(args.ddp_steps), str(args.ddp_batch_size),
               str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return {"settings": {"steps": args.ddp_steps, "global_batch": args.ddp_batch_size, "space": "nb201 C=16 N=2",
                         "objective": "simclr (global batch)", "processes": args.processes},
            **json.loads(out.read_text())}  # fmt: skip


def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    return {"model": fields.get("Model name", "?").strip(), "flags": fields.get("Flags", "").strip(),
            "cores": os.cpu_count(), "load_average_at_start": os.getloadavg()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "train"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--num-images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ddp-steps", type=int, default=20)
    parser.add_argument("--ddp-batch-size", type=int, default=64)
    parser.add_argument("--parts", nargs="+", default=["pretrain", "averaging"], choices=["pretrain", "averaging"])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_ddp")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ddp_cpu.json")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    result: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}, "machine": machine()}
    if "pretrain" in args.parts:
        one = pretrain([sys.executable], args.processes, args, args.work / "one")
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.processes)]
        many = pretrain(torchrun, 1, args, args.work / "torchrun")
        result["pretrain"] = {
            f"one process, {args.processes} threads": one,
            f"torchrun, {args.processes} processes x 1 thread": many,
            "speedup": many["images_per_second"] / one["images_per_second"],  # type: ignore[operator]
        }
    if "averaging" in args.parts:
        result["averaging"] = averaging(args)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--averaging-worker":
        averaging_worker(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()

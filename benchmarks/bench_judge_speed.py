"""Stage 2's speed: the judge's training (ssnas's one loop) against a bare PyTorch loop, same network, same CPU.

For each network size and precision, one NB201 cell is trained with rotation prediction for
`--steps` steps of `--batch-passes` backbone passes, twice, side by side in this process:

* bare: pre-rotated random tensors, forward, cross-entropy, backward, SGD step; nothing else;
* ssnas: `ssnas.judging.judge_network`'s training (`ssnas.training.loop.train`: views made on the
  fly, rotation batch, learning-rate schedule, loss check, checkpoint at the end).

Also: the two ways of judging two candidates on two cores (one process with two threads, one
after the other; two processes with one thread each, side by side), and `torch.compile` for the
bare loop. Writes JSON with the CPU model and flags.

    .venv/bin/python benchmarks/bench_judge_speed.py --out benchmarks/results/judge_speed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rankers import cpu_record

from ssnas.data.views import VIEWS
from ssnas.objectives import create_objective
from ssnas.objectives.rotation import rotated_batch
from ssnas.spaces import create_space
from ssnas.training.loop import TrainConfig, train
from ssnas.training.precision import resolve_precision

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|skip_connect~2|"


def network(size: dict[str, int]) -> nn.Module:
    torch.manual_seed(0)
    space = create_space("nb201", **size)
    return space.build(space.parse(CELL))


def bare(size: dict[str, int], precision: str, steps: int, batch_passes: int, channels_last: bool = True,
         compiled: bool = False) -> float:  # fmt: skip
    """Backbone passes per second of the plainest loop: forward, loss, backward, step."""
    model = network(size)
    head = nn.Linear(model.feature_dim, 4)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)  # fmt: skip
    x, y = rotated_batch(torch.randn(batch_passes // 4, 3, 32, 32))
    x = x.contiguous(memory_format=layout)
    forward = torch.compile(model.forward_features) if compiled else model.forward_features

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(head(forward(x)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_passes / (time.perf_counter() - started)


def judged(size: dict[str, int], precision: str, steps: int, batch_passes: int, images: torch.Tensor) -> float:
    """Backbone passes per second of the judge's training through the one loop (after a warm-up run)."""
    objective = create_objective("rotation")
    batch = batch_passes // objective.passes_per_image
    config = TrainConfig(epochs=1, batch_size=batch, lr=0.1, nesterov=True, precision=precision, device="cpu",
                         progress=False)  # fmt: skip
    views = VIEWS.create(objective.view_recipe)
    train(network(size), create_objective("rotation"), images[: 3 * batch], views, config)  # warm-up
    result = train(network(size), objective, images[: steps * batch], views, config)
    return result.images_per_second * objective.passes_per_image


def _worker(args: tuple[dict[str, int], str, int, int, int]) -> float:
    size, precision, steps, batch_passes, threads = args
    torch.set_num_threads(threads)
    return bare(size, precision, steps, batch_passes)


def side_by_side(size: dict[str, int], precision: str, steps: int, batch_passes: int) -> dict[str, float]:
    """Two candidates on two cores: one after the other with 2 threads, or together with 1 thread each."""
    started = time.perf_counter()
    for _ in range(2):
        _worker((size, precision, steps, batch_passes, 2))
    sequential = 2 * (steps + 3) * batch_passes / (time.perf_counter() - started)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:  # each worker times its own steps (process start-up excluded); they overlap
        rates = pool.map(_worker, [(size, precision, 4 * steps, batch_passes, 1)] * 2)
    return {"one_process_two_threads": sequential, "two_processes_one_thread": sum(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-passes", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on the bare loop")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    images = torch.randint(0, 256, (args.steps * args.batch_passes, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    rows = []
    for size in ({"C": 16, "N": 1}, {"C": 16, "N": 5}):
        for precision in ("fp32", "bf16"):
            row = {"network": size, "precision": precision,
                   "bare": bare(size, precision, args.steps, args.batch_passes),
                   "bare_contiguous": bare(size, precision, args.steps, args.batch_passes, channels_last=False),
                   "ssnas": judged(size, precision, args.steps, args.batch_passes, images)}  # fmt: skip
            row["ssnas_over_bare"] = row["ssnas"] / row["bare"]
            if args.compile:
                row["bare_compiled"] = bare(size, precision, args.steps, args.batch_passes, compiled=True)
            print(json.dumps(row), flush=True)
            rows.append(row)
    two = side_by_side({"C": 16, "N": 1}, resolve_precision("auto", torch.device("cpu")).name, args.steps,
                       args.batch_passes)  # fmt: skip
    print(json.dumps(two), flush=True)
    result = {"command": "benchmarks/bench_judge_speed.py " + " ".join(sys.argv[1:]), "cpu": cpu_record(),
              "cell": CELL, "steps": args.steps, "batch_passes": args.batch_passes, "rows": rows,
              "two_candidates_on_two_cores": two}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

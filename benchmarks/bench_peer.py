"""Peer benchmark: ssnas's SETN iteration against the reference implementation (xautodl).

    .venv/bin/pip install --no-deps xautodl        # benchmark environment only, not an ssnas dependency
    .venv/bin/python benchmarks/bench_peer.py [--rounds 5] [--steps 6] [--threads 2] [--out PATH]

One SETN iteration (Dong & Yang, ICCV 2019; methods.md §2.2) on NB201 with C=16, N=5, batch 64,
10 classes, supervised CE as in xautodl:

* weight step: one architecture drawn uniformly per edge, only its path runs, SGD (nesterov,
  lr 0.025, wd 5e-4) on the shared weights;
* evaluator step: the softmax(alpha)-weighted mixture of all ops on a held-out batch, Adam
  (lr 3e-4, betas 0.5/0.999, wd 1e-3) on alpha.

xautodl: `TinyNetworkSETN` (affine=False, track_running_stats=False, ssnas's supernet default)
driven the way AutoDL's `search-cell.py` drives it for `setn` (`dync_genotype(True)` +
`set_cal_mode("dynamic")`, then `set_cal_mode("joint")`), on ready float tensors (no augmentation
cost). ssnas: `SETN.train_template` (the real loop, including its crop-flip views on uint8 images
and the evaluator hook). Both count 64 images per iteration. Rounds alternate xautodl and ssnas in
one process with the same threads; the ratio is the median of the per-round ratios.

Also a parity check: ssnas's `NB201Network` and xautodl's `TinyNetwork` with copied weights give
the same logits (max abs difference, train and eval mode).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ssnas.spaces import create_space
from ssnas.strategies.base import SearchTask
from ssnas.strategies.setn import SETN
from ssnas.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
BEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
C, N, BATCH, CLASSES = 16, 5, 64, 10

try:
    import xautodl  # noqa: F401
except ImportError:
    xautodl = None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating xautodl/ssnas rounds per precision")
    parser.add_argument("--steps", type=int, default=6, help="timed iterations per round (after the warm-up ones)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations before each timed run")
    parser.add_argument("--bf16-rounds", type=int, default=1, help="rounds for bf16 (emulated on CPUs without it: slow)")
    parser.add_argument("--bf16-steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--channels-last", default="both", choices=("both", "on", "off"),
                        help="ssnas's TrainConfig.channels_last setting(s) to measure")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/peer_<cpu kind>.json")
    return parser.parse_args()


def cpu_info() -> dict[str, Any]:
    fields = {}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    flags = fields.get("Flags", "").split()
    return {
        "model_name": fields.get("Model name", platform.processor() or "unknown"),
        "flags": " ".join(flags),
        "avx512f": "avx512f" in flags,
        "native_bf16": bool({"avx512_bf16", "amx_bf16"} & set(flags)),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": fields.get("CPU(s)"),
    }


def cpu_kind(info: dict[str, Any]) -> str:
    vendor = "amd" if "AMD" in info["model_name"] else "intel" if "Intel" in info["model_name"] else "cpu"
    level = "avx512" if info["avx512f"] else "avx2"
    return f"{vendor}_{level}" + ("_bf16" if info["native_bf16"] else "")


def autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- xautodl


def xautodl_rate(steps: int, warmup: int, precision: str, seed: int) -> float:
    """Images/s of xautodl's SETN iteration (weight step + joint evaluator step)."""
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs import TinyNetworkSETN

    torch.manual_seed(seed)
    random.seed(seed)
    net = TinyNetworkSETN(C, N, 4, CLASSES, NAS_BENCH_201, affine=False, track_running_stats=False)
    w_opt = torch.optim.SGD(net.get_weights(), lr=0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    g = torch.Generator().manual_seed(seed)
    data = [(torch.randn(BATCH, 3, 32, 32, generator=g), torch.randint(CLASSES, (BATCH,), generator=g)) for _ in range(4)]
    net.train()

    def iteration(i: int) -> None:
        (x, y), (xv, yv) = data[(2 * i) % 4], data[(2 * i + 1) % 4]
        net.set_cal_mode("dynamic", net.dync_genotype(True))
        w_opt.zero_grad()
        with autocast(precision):
            _, logits = net(x)
        F.cross_entropy(logits.float(), y).backward()
        w_opt.step()
        net.set_cal_mode("joint")
        a_opt.zero_grad()
        with autocast(precision):
            _, logits = net(xv)
        F.cross_entropy(logits.float(), yv).backward()
        a_opt.step()

    for i in range(warmup):
        iteration(i)
    started = time.perf_counter()
    for i in range(steps):
        iteration(i)
    return steps * BATCH / (time.perf_counter() - started)


# ---------------------------------------------------------------- ssnas


def ssnas_rate(steps: int, warmup: int, precision: str, seed: int, channels_last: bool) -> float:
    """Images/s of ssnas's SETN training (`SETN.train_template`: loop + evaluator hook)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (BATCH * max(steps, warmup), 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(CLASSES, (images.shape[0],), generator=g)
    holdout = torch.randint(0, 256, (4 * BATCH, 3, 32, 32), dtype=torch.uint8, generator=g)
    holdout_labels = torch.randint(CLASSES, (holdout.shape[0],), generator=g)
    config = TrainConfig(epochs=1, batch_size=BATCH, optimizer="sgd", lr=0.025, momentum=0.9, weight_decay=5e-4,
                         nesterov=True, precision=precision, channels_last=channels_last, device="cpu",
                         progress=False, seed=seed)  # fmt: skip
    setn = SETN(supernet={"C": C, "N": N})

    def run(max_steps: int) -> float:
        task = SearchTask(create_space("nb201"), images, holdout, "supervised", None,
                          replace_steps(config, max_steps), seed, labels=labels, holdout_labels=holdout_labels)  # fmt: skip
        return setn.train_template(task).result.images_per_second

    if warmup:
        run(warmup)
    return run(steps)


def replace_steps(config: TrainConfig, max_steps: int) -> TrainConfig:
    from dataclasses import replace

    return replace(config, max_steps=max_steps)


# ---------------------------------------------------------------- parity


@torch.no_grad()
def parity() -> dict[str, float]:
    """Max |logits difference| between ssnas's NB201Network and xautodl's TinyNetwork, copied weights."""
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure

    torch.manual_seed(0)
    reference = TinyNetwork(C, N, Structure.str2structure(BEST_CELL), CLASSES)
    space = create_space("nb201", C=C, N=N)
    ours = space.build(space.parse(BEST_CELL), num_classes=CLASSES)
    theirs_state, our_state = reference.state_dict(), ours.state_dict()
    if [v.shape for v in theirs_state.values()] != [v.shape for v in our_state.values()]:
        raise RuntimeError("the two networks' tensors do not line up")
    ours.load_state_dict(dict(zip(our_state, theirs_state.values())))
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out: dict[str, float] = {"tensors_copied": len(our_state)}
    for mode in ("train", "eval"):
        reference.train(mode == "train")
        ours.train(mode == "train")
        out[f"max_abs_diff_{mode}"] = float((reference(x)[1] - ours(x)).abs().max())
    out["logit_scale"] = float(ours(x).abs().max())
    return out


# ---------------------------------------------------------------- main


def alternate(rounds: int, runners: dict[str, Callable[[], float]]) -> Iterator[dict[str, float]]:
    for _ in range(rounds):
        yield {name: run() for name, run in runners.items()}


def main() -> None:
    args = parse_args()
    if xautodl is None:
        raise SystemExit("xautodl is not installed: run `.venv/bin/pip install --no-deps xautodl` (benchmark only)")
    torch.set_num_threads(args.threads)
    info = cpu_info()
    report: dict[str, Any] = {
        "command": "python benchmarks/bench_peer.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "cpu": info,
        "torch": torch.__version__,
        "xautodl": getattr(xautodl, "__version__", "1.0.0"),
        "threads": torch.get_num_threads(),
        "setting": {"C": C, "N": N, "batch": BATCH, "classes": CLASSES, "images_per_iteration": BATCH,
                    "warmup": args.warmup},
        "parity": parity(),
        "images_per_s": {},
    }  # fmt: skip
    print("parity:", report["parity"])
    layouts = {"both": (True, False), "on": (True,), "off": (False,)}[args.channels_last]
    report["load_average_before"] = os.getloadavg()
    for precision in args.precisions.split(","):
        steps, count = (args.bf16_steps, args.bf16_rounds) if precision == "bf16" else (args.steps, args.rounds)
        runners: dict[str, Callable[[], float]] = {
            "xautodl": lambda p=precision, n=steps: xautodl_rate(n, args.warmup, p, 0)
        }
        for cl in layouts:
            runners[f"ssnas_cl{int(cl)}"] = lambda p=precision, cl=cl, n=steps: ssnas_rate(n, args.warmup, p, 0, cl)
        rounds = list(alternate(count, runners))
        summary = {name: round(statistics.median(r[name] for r in rounds), 2) for name in runners}
        ratios = {name: round(statistics.median(r[name] / r["xautodl"] for r in rounds), 3)
                  for name in runners if name != "xautodl"}  # fmt: skip
        report["images_per_s"][precision] = {"median": summary, "ratio_vs_xautodl": ratios, "rounds": rounds,
                                             "steps_per_round": steps, "load_average_after": os.getloadavg()}
        print(precision, summary, ratios, flush=True)
        write(report, args.out or ROOT / "benchmarks" / "results" / f"peer_{cpu_kind(info)}.json")


def write(report: dict[str, Any], out: Path) -> None:
    """Headline figures (fp32 ratio, best precision of each) and the JSON file."""
    fp32 = report["images_per_s"].get("fp32")
    if fp32 is not None:
        best = max(fp32["ratio_vs_xautodl"], key=fp32["ratio_vs_xautodl"].get)
        report["ratio_fp32"] = fp32["ratio_vs_xautodl"][best]
        report["ssnas_setting_fp32"] = best
        bests = {}
        for who in ("xautodl", best):
            p = max(report["images_per_s"], key=lambda p: report["images_per_s"][p]["median"][who])
            bests[who] = {"precision": p, "images_per_s": report["images_per_s"][p]["median"][who]}
        report["best_precision"] = bests
        report["ratio_best_vs_best"] = round(bests[best]["images_per_s"] / bests["xautodl"]["images_per_s"], 3)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("cpu", "images_per_s")}, indent=2))
    print("wrote", out, flush=True)


if __name__ == "__main__":
    main()

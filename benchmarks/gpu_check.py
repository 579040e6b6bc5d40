"""One prepared run of every GPU check: the CUDA tests and the throughput benchmarks, one JSON.

Meant for a machine with a GPU (the `device` tool, when a session is lent one), run once with a
timeout that leaves time to run it again:

    python benchmarks/gpu_check.py --data ../shared/data/cifar10-jpeg --out benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --tensors .gpu/cifar_subset.pt ...   # no image folder on that machine

Steps, each a subprocess with its own time limit (its exit code, seconds and the tail of its output
are recorded whether it passes or not, so one failure does not hide the others):

* `tests`: the tests that run only where CUDA is (views on CUDA tensors), plus the loop's and
  the precision's tests on this machine;
* `loop`: `bench_loop.py` (images/s of the training loop per precision: fp32, bf16, AMP; exact
  resume; a SimCLR sanity run);
* `pretrain`: `bench_pretrain.py` (SimCLR pretraining throughput per precision, short);
* `finetune`: `ssnas pretrain --preset paper` for one epoch, then `ssnas finetune --preset paper
  --labels-per-class 50` per precision (the SSL-to-model path on the device, at the GPU settings).

`--device cpu --quick` runs the same plumbing on a CPU in a few minutes (what the repository's own
machine can check). The rating engine and the judge are timed on CPUs only (`bench_rating_speed.py`,
`bench_judge_speed.py` take no device).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TAIL = 3000  # characters of a step's output kept in the JSON


def step(name: str, command: list[str], timeout: float, result_file: Path | None = None) -> dict[str, Any]:
    """Run `command` from the repository root; its exit code, seconds, output tail and JSON result."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        code, output = 124, f"timed out after {timeout:.0f} s\n{expired.stdout or ''}{expired.stderr or ''}"
    record: dict[str, Any] = {"command": command, "returncode": code, "seconds": round(time.perf_counter() - started, 1),
                              "output_tail": str(output)[-TAIL:]}  # fmt: skip
    if result_file is not None and result_file.exists():
        record["result"] = json.loads(result_file.read_text())
    print(f"{name}: exit {code} in {record['seconds']} s", flush=True)
    return record


def machine(device: str) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"device": device, "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "bf16_supported": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CIFAR-10 folder with train/ and test/")
    parser.add_argument("--tensors", type=Path, default=None, help="bench_loop's saved subset (.pt) instead of --data")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="smallest sizes: check the plumbing (e.g. on a CPU)")
    parser.add_argument("--steps", nargs="+", default=["tests", "loop", "pretrain", "finetune"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; pass --device cpu --quick to check the plumbing")
    if args.data is None and args.tensors is None:
        raise SystemExit("give --data (an image folder) or --tensors (a saved subset)")
    python, work = sys.executable, Path(tempfile.mkdtemp(prefix="gpu_check-"))
    report: dict[str, Any] = {"machine": machine(args.device), "quick": args.quick, "steps": {}}
    source = ["--tensors", str(args.tensors)] if args.tensors else ["--data", str(args.data)]

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))

    if "tests" in args.steps:
        tests = ["tests/test_views.py", "tests/test_loop.py", "tests/test_precision.py"]
        report["steps"]["tests"] = step("tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], 900)
        save()
    if "loop" in args.steps:
        sizes = ["--train", "256", "--test", "256", "--throughput-steps", "2"] if args.quick else []
        out = work / "loop.json"
        report["steps"]["loop"] = step("loop", [python, "benchmarks/bench_loop.py", *source, "--device", args.device,
                                                *sizes, "--out", str(out)], 1200, out)  # fmt: skip
        save()
    if "pretrain" in args.steps and args.data is not None:
        sizes = (["--minutes", "0.2", "--num-images", "512", "--test-images", "256", "--throughput-steps", "2",
                  "--objectives", "simclr"] if args.quick else ["--minutes", "2", "--objectives", "simclr", "byol"])  # fmt: skip
        out = work / "pretrain.json"
        report["steps"]["pretrain"] = step("pretrain", [python, "benchmarks/bench_pretrain.py", "--data", str(args.data),
                                                        "--device", args.device, *sizes, "--work", str(work / "pre"),
                                                        "--out", str(out)], 1800, out)  # fmt: skip
        save()
    if "finetune" in args.steps and args.data is not None:
        ssnas = [python, "-m", "ssnas.cli.main"]
        size = ["--channels", "4", "--cells", "1"] if args.quick else []
        pre = work / "ft-pretrain"
        runs: dict[str, Any] = {"pretrain": step("finetune: pretrain", [*ssnas, "pretrain", ARCH, "--data",
                                                  str(args.data), "--preset", "paper", "--epochs", "1", "--num-images", "256" if args.quick else "5000",
                                                  "--device", args.device, *size, "--no-progress", "--out", str(pre)],
                                                 900)}  # fmt: skip
        precisions = ["fp32", "bf16"] + (["amp"] if args.device.startswith("cuda") else [])
        for precision in precisions:
            out = work / f"ft-{precision}"
            record = step(f"finetune: {precision}", [*ssnas, "finetune", str(pre), "--data", str(args.data),
                                                     "--preset", "paper", "--labels-per-class", "5" if args.quick else "50", "--epochs", "2",
                                                     "--device", args.device, "--precision", precision, "--json",
                                                     "--out", str(out)], 900, out / "metrics.json")  # fmt: skip
            runs[precision] = record
        report["steps"]["finetune"] = runs
        save()
    failed = [name for name, record in report["steps"].items()
              if any(r.get("returncode") for r in ([record] if "returncode" in record else record.values()))]  # fmt: skip
    report["failed"] = failed
    save()
    print(f"wrote {args.out}; failed steps: {', '.join(failed) or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

"""Resident memory and wall time of a streamed `ssnas rank --out FOLDER` as the architectures pile up.

Runs the real command in a subprocess and samples, every half second, the resident memory
(/proc VmRSS, and VmHWM, the peak so far) of the command and of its worker processes, and how
many architectures are rated (the chunk files on disk). Records the figures when 1k, 10k, ...
architectures are rated and at the end, the machine's load while it ran, and the wall time.
With `--kill-at F` the command is SIGKILLed once a fraction F is rated, resumed with --resume,
and the resulting scores.csv is compared (SHA-256) with an uninterrupted run's.

    .venv/bin/python benchmarks/bench_rank_stream.py --select all --workers 2 --marks 1000 10000 \
        --out benchmarks/results/rank_stream_nb201_all.json
    .venv/bin/python benchmarks/bench_rank_stream.py --space darts --select 100000 --ranker params \
        --chunk-size 1000 --marks 1000 10000 50000 --kill-at 0.5 --out benchmarks/results/rank_stream_darts_100k.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench_rankers import cpu_record

ROOT = Path(__file__).resolve().parents[1]
PAGE_KB = 1024


def descendants(pid: int) -> list[int]:
    """`pid`'s child processes, grandchildren included (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MB; zeros once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    values = {line.split(":")[0]: float(line.split()[1]) / 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def rated(out: Path) -> int:
    """Architectures on disk: rows of the chunk files (all full but maybe the last)."""
    paths = sorted((out / "ratings").glob("chunk-*.csv"))
    if not paths:
        return 0
    with paths[-1].open() as last:
        tail = sum(1 for _ in last) - 1
    with paths[0].open() as first:
        size = sum(1 for _ in first) - 1
    return size * (len(paths) - 1) + tail if paths[-1] != paths[0] else tail


def watch(command: list[str], out: Path, marks: list[int], kill_at: int | None, state: dict) -> subprocess.Popen:
    """Run `command`, sampling memory into `state` until it ends (or is killed at `kill_at` rated)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    while process.poll() is None:
        main_rss, main_hwm = memory_mb(process.pid)
        workers = {pid: memory_mb(pid) for pid in descendants(process.pid)}
        state["main_peak_mb"] = max(state.get("main_peak_mb", 0.0), main_hwm)
        state["workers_peak_mb"] = max([state.get("workers_peak_mb", 0.0), *(hwm for _, hwm in workers.values())])
        total = main_rss + sum(rss for rss, _ in workers.values())
        state["total_rss_peak_mb"] = max(state.get("total_rss_peak_mb", 0.0), total)
        state["loads"].append(os.getloadavg()[0])
        done = rated(out)
        for mark in marks:
            if done >= mark and str(mark) not in state["marks"]:
                state["marks"][str(mark)] = {
                    "rated": done, "seconds": time.perf_counter() - state["started"],
                    "main_rss_mb": main_rss, "main_peak_mb": state["main_peak_mb"],
                    "workers_rss_mb": sorted(rss for rss, _ in workers.values()),
                    "workers_peak_mb": state["workers_peak_mb"], "total_rss_mb": total,
                }  # fmt: skip
                print(f"{mark}: {json.dumps(state['marks'][str(mark)])}", flush=True)
        if kill_at is not None and done >= kill_at:
            process.send_signal(signal.SIGKILL)
            process.wait()
            state["killed_at"] = done
            return process
        time.sleep(0.5)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--select", default="all", help="all, or N (--sample N)")
    parser.add_argument("--ranker", default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--marks", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--kill-at", type=float, default=None, help="SIGKILL at this fraction rated, then --resume")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "rank_stream")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    folder = args.work / f"{args.space}-{args.select}"
    shutil.rmtree(folder, ignore_errors=True)
    selection = ["--all"] if args.select == "all" else ["--sample", args.select]
    options = [*selection, "--space", args.space, "--workers", str(args.workers), "--data", args.data, "--json",
               "--no-progress", *(["--ranker", args.ranker] if args.ranker else []),
               *(["--chunk-size", str(args.chunk_size)] if args.chunk_size else []),
               *(["--batch-size", str(args.batch_size)] if args.batch_size else [])]  # fmt: skip
    command = [str(Path(sys.executable).parent / "ssnas"), "rank", *options, "--out", str(folder)]
    state: dict = {"marks": {}, "loads": [], "started": time.perf_counter()}
    if args.kill_at is not None and args.select == "all":
        sys.exit("--kill-at needs --select N (the count to take the fraction of)")
    kill_rows = int(args.kill_at * int(args.select)) if args.kill_at is not None else None
    process = watch(command, folder, args.marks, kill_rows, state)
    resumed = None
    if "killed_at" in state:
        process = watch([*command, "--resume"], folder, args.marks, None, state)
        resumed = state["killed_at"]
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - state["started"]
    if process.returncode != 0:
        sys.exit(f"ssnas rank failed ({process.returncode}): {stderr[-3000:]}")
    report = json.loads(stdout)
    count = report["count"]
    digest = hashlib.sha256((folder / "scores.csv").read_bytes()).hexdigest()
    result = {
        "command": "benchmarks/bench_rank_stream.py " + " ".join(sys.argv[1:]),
        "ssnas_command": " ".join(command[1:]), "cpu": cpu_record(), "space": args.space, "select": args.select,
        "ranker": report["ranker"], "count": count, "workers": args.workers, "chunk_size": report.get("chunk_size"),
        "wall_seconds": wall, "seconds_per_arch_of_passes": report.get("seconds_per_arch"),
        "marks": state["marks"], "main_peak_mb": state.get("main_peak_mb"), "workers_peak_mb": state.get("workers_peak_mb"),
        "total_rss_peak_mb": state.get("total_rss_peak_mb"),
        "load_1min": {"mean": sum(state["loads"]) / max(1, len(state["loads"])), "max": max(state["loads"], default=0)},
        "scores_sha256": digest,
        "correlations": {k: report[k] for k in ("spearman_rho", "kendall_tau") if k in report},
    }  # fmt: skip
    if resumed is not None:
        reference = args.work / f"{args.space}-{args.select}-uninterrupted"
        shutil.rmtree(reference, ignore_errors=True)
        done = subprocess.run([*command[:-1], str(reference)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"uninterrupted run failed: {done.stderr[-3000:]}")
        same = (reference / "scores.csv").read_bytes() == (folder / "scores.csv").read_bytes()
        result["kill_resume"] = {"killed_at_rated": resumed, "resumed_rated": report.get("rated_now"),
                                 "scores_identical_to_uninterrupted": same}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "cpu"}, indent=1))


if __name__ == "__main__":
    main()

"""Soak a shared TPE study, or a shared rating, under faults: workers SIGKILLed and restarted until done.

    .venv/bin/python benchmarks/bench_soak.py [--workers 4] [--trials 200] [--kill-every 5]
        [--storages postgres journal] [--out benchmarks/results/soak.json]
    .venv/bin/python benchmarks/bench_soak.py --workers 4 --kill-every 10 --storages postgres \
        --reference ONE_PROCESS/scores.csv --out benchmarks/results/soak_rating_nb201.json \
        --rating --all --space nb201 --data ../shared/data/cifar10-jpeg

Rating mode (`--rating RANK_ARGS`, last on the line): `ssnas rank RANK_ARGS --out DIR --storage S`
starts a shared rating and `--workers` - 1 `ssnas worker` processes join it (the real CLI, one
thread each). Every `--kill-every` newly rated chunks a random one of them (the starting command
included) is SIGKILLed and started again (the starting command with --resume). Reported: chunks
lost (no COMPLETE trial) and duplicated (COMPLETE twice), rows and distinct architectures of the
merged scores.csv, whether it is byte-identical to `--reference` (one process's), kills, re-queued
chunks, wall time.

One study per storage (PostgreSQL started on 127.0.0.1 by the script, as tests/_pg.py does,
and the journal file). `--workers` worker processes run `ssnas.strategies.tpe.run_worker` with
a cheap fake trial (tests/_fake_worker.py: a deterministic loss of the architecture after
`--sleep` seconds), so the figures measure the storage and re-queue machinery, not the proxy.
Every `--kill-every` newly completed trials a random worker that has been up for a second or
more is killed with SIGKILL (in whatever it is doing: a trial, an ask, a write) and a new
worker is started in its place. Killed trials lose their heartbeat, are failed after the grace
period and re-queued (Optuna's RetryHeartbeatStaleTrialCallback; the same for the journal).

Reported per storage: completed trials (target exactly `--trials`), duplicated (trials completed
beyond the budget, or a killed trial completed as well as its retry), lost (killed trials with
no retry, and trials left RUNNING), re-queued trials, kills survived, trials/hour, and the seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _fake_worker import FakeEvaluate, fast_study_config, tiny_task

from ssnas.strategies.tpe import OptunaSearch, run_worker
from ssnas.studies import open_storage

SSNAS_CLI = [sys.executable, "-m", "ssnas.cli.main"]
MAX_RETRY = 50  # a trial may be killed many times in a row in a soak; each time it is re-queued


@dataclass
class SoakResult:
    storage: str
    workers: int
    trials: int
    completed: int
    duplicated: int
    lost: int
    requeued: int
    requeued_unused: int  # retries still WAITING when the budget was met by other trials
    surplus_closed: int  # asked trials closed unevaluated because the budget was full
    kills_survived: int
    worker_exit_codes: list[int]
    seconds: float
    trials_per_hour: float


def _study_config(storage: str, study: str, trials: int):  # type: ignore[no-untyped-def]
    return fast_study_config(storage=storage, study_name=study, n_trials=trials, max_retry=MAX_RETRY)


def worker_main(storage: str, study: str, trials: int, sleep: float) -> None:
    """One worker process (`--worker`): joins the study until it holds `trials` COMPLETE trials."""
    import torch

    torch.set_num_threads(1)
    task = tiny_task()
    run_worker(study, storage, task, trials, evaluate=FakeEvaluate(task.space, sleep),
               study_config=_study_config(storage, study, trials))  # fmt: skip


def _spawn(storage: str, study: str, trials: int, sleep: float, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", storage, study, str(trials), str(sleep)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def _trials(storage: str, study: str) -> list:  # type: ignore[type-arg]
    opened, _ = open_storage(storage, _study_config(storage, study, 1))
    return opened.get_all_trials(opened.get_study_id_from_name(study), deepcopy=False)


def soak(storage: str, study: str, workers: int, trials: int, kill_every: int, sleep: float, seed: int,
         log: Path, max_kills: int | None = None, timeout: float = 3600.0) -> SoakResult:  # fmt: skip
    """Run the study to `trials` COMPLETE trials with `workers` workers, SIGKILLing one every
    `kill_every` completions (at most `max_kills`), and count what the storage holds at the end."""
    OptunaSearch("tpe", study=_study_config(storage, study, trials)).prepare(tiny_task())
    rng = random.Random(seed)
    started = time.monotonic()
    pool = [(_spawn(storage, study, trials, sleep, log), time.monotonic()) for _ in range(workers)]
    exit_codes: list[int] = []
    kills, next_kill = 0, kill_every
    while any(p.poll() is None for p, _ in pool):
        if time.monotonic() - started > timeout:
            for p, _ in pool:
                p.kill()
            raise SystemExit(f"soak on {storage} did not finish in {timeout:.0f} s; see {log}")
        complete = sum(t.state.name == "COMPLETE" for t in _trials(storage, study))
        up = [i for i, (p, born) in enumerate(pool) if p.poll() is None and time.monotonic() - born > 1.0]
        if complete >= next_kill and complete < trials and up and (max_kills is None or kills < max_kills):
            victim = rng.choice(up)
            process = pool[victim][0]
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            pool[victim] = (_spawn(storage, study, trials, sleep, log), time.monotonic())
            kills, next_kill = kills + 1, complete + kill_every
        time.sleep(0.2)
    seconds = time.monotonic() - started
    exit_codes = [p.returncode for p, _ in pool]
    return count(storage, study, trials, workers, kills, exit_codes, seconds)


def count(storage: str, study: str, trials: int, workers: int, kills: int, exit_codes: list[int],
          seconds: float) -> SoakResult:  # fmt: skip
    """The figures from what the storage holds."""
    held = _trials(storage, study)
    state = {t.number: t.state.name for t in held}
    complete = [t for t in held if t.state.name == "COMPLETE"]
    # Optuna's retry callback gives each re-queued trial `failed_trial` = the chain's first trial
    # and `retry_history` = every failed trial before it (a retry can itself be killed).
    retries = {t.number: int(t.system_attrs["failed_trial"]) for t in held if "failed_trial" in t.system_attrs}
    retried = {int(n) for t in held for n in t.system_attrs.get("retry_history", [])}
    killed = [t for t in held if t.state.name == "FAIL" and not t.user_attrs.get("ssnas:surplus")]
    chains: dict[int, list[int]] = {}
    for t in held:
        chains.setdefault(retries.get(t.number, t.number), []).append(t.number)
    both_done = sum(max(0, sum(state[n] == "COMPLETE" for n in chain) - 1) for chain in chains.values())
    repeated_numbers = len(held) - len({t.number for t in held})
    lost = sum(t.number not in retried for t in killed) + sum(t.state.name == "RUNNING" for t in held)
    return SoakResult(
        storage=storage.split("://")[0] if "://" in storage else "journal",
        workers=workers,
        trials=trials,
        completed=len(complete),
        duplicated=max(0, len(complete) - trials) + both_done + repeated_numbers,
        lost=lost,
        requeued=len(retries),
        requeued_unused=sum(state[n] == "WAITING" for n in retries),
        surplus_closed=sum(bool(t.user_attrs.get("ssnas:surplus")) for t in held),
        kills_survived=kills,
        worker_exit_codes=exit_codes,
        seconds=round(seconds, 1),
        trials_per_hour=round(3600.0 * len(complete) / seconds, 1),
    )


# --- rating mode: a whole space rated by processes sharing one study, SIGKILLed at will -------------


@dataclass
class RatingSoakResult:
    storage: str
    processes: int  # the starting `ssnas rank --storage` and the `ssnas worker`s, all killable
    chunks: int
    architectures: int
    chunks_complete: int
    lost: int  # chunks with no COMPLETE trial at the end
    duplicated: int  # chunks COMPLETE more than once (work done twice; written once)
    rows: int  # rows of the merged scores.csv
    unique_archs: int
    kills_survived: int
    requeued: int  # trials failed for a stale heartbeat (a process killed mid-chunk; the chunk taken again)
    equal_to_one_process: bool | None  # merged scores.csv byte-identical to --reference (None: not given)
    exit_codes: list[int]
    seconds: float
    architectures_per_second: float


def soak_rating(storage: str, study: str, processes: int, kill_every: int, seed: int, rank_args: list[str],
                work: Path, log: Path, reference: Path | None, heartbeat: int, timeout: float) -> RatingSoakResult:  # fmt: skip
    """Rate with `processes` processes sharing `study` (the first one the starting `ssnas rank`),
    SIGKILLing a random one every `kill_every` newly completed chunks and starting it again (the
    starting command with --resume). Counts chunks and rows at the end."""
    from ssnas.rating.shared import SharedStudy, chunk_progress, join_rating

    out = work / f"rating-{study}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = [*SSNAS_CLI, "rank", *rank_args, "--out", str(out), "--storage", storage, "--study", study,
             "--heartbeat-interval", str(heartbeat), "--no-progress", "--json"]  # fmt: skip
    worker = [*SSNAS_CLI, "worker", "--study", study, "--storage", storage, "--json",
              *(rank_args[rank_args.index("--data"):][:2] if "--data" in rank_args else [])]  # fmt: skip

    def spawn(index: int, resume: bool = False) -> subprocess.Popen[bytes]:
        command = start + (["--resume"] if resume else []) if index == 0 else worker
        return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)

    rng = random.Random(seed)
    started = time.monotonic()
    pool = [(spawn(0), started)]
    shared, study_handle, chunks = SharedStudy(storage, study), None, 0
    kills, next_kill = 0, kill_every
    while any(p.poll() is None for p, _ in pool):
        if time.monotonic() - started > timeout:
            for p, _ in pool:
                p.kill()
            raise SystemExit(f"rating soak on {storage} did not finish in {timeout:.0f} s; see {log}")
        time.sleep(1.0)
        if study_handle is None:
            try:
                study_handle, _, settings = join_rating(shared)
            except Exception:  # noqa: BLE001 - the study is not there yet
                continue
            chunks = int(settings["chunks"])
            pool += [(spawn(i), time.monotonic()) for i in range(1, processes)]
        done = len(chunk_progress(study_handle, chunks).texts)
        up = [i for i, (p, born) in enumerate(pool) if p.poll() is None and time.monotonic() - born > 5.0]
        if done >= next_kill and done < chunks and up:
            victim = rng.choice(up)
            os.kill(pool[victim][0].pid, signal.SIGKILL)
            pool[victim][0].wait()
            pool[victim] = (spawn(victim, resume=victim == 0), time.monotonic())
            kills, next_kill = kills + 1, done + kill_every
    seconds = time.monotonic() - started
    assert study_handle is not None
    state = chunk_progress(study_handle, chunks)
    trials = study_handle.get_trials(deepcopy=False)
    scores = out / "scores.csv"
    keys = [line.split(",", 1)[0] for line in scores.read_text().splitlines()[1:]] if scores.exists() else []
    count = sum(text.count("\n") - 1 for text in state.texts.values())
    return RatingSoakResult(
        storage=storage.split("://")[0] if "://" in storage else "journal",
        processes=processes, chunks=chunks, architectures=count, chunks_complete=len(state.texts),
        lost=chunks - len(state.texts), duplicated=state.duplicates, rows=len(keys), unique_archs=len(set(keys)),
        kills_survived=kills,
        requeued=sum(t.state.name == "FAIL" and "surplus" not in str(t.user_attrs.get("ssnas:fail_reason", ""))
                     for t in trials),  # stale heartbeat: ssnas's reason on the journal, none from Optuna's own (RDB)
        equal_to_one_process=None if reference is None or not scores.exists() else _sha(scores) == _sha(reference),
        exit_codes=[p.returncode for p, _ in pool], seconds=round(seconds, 1),
        architectures_per_second=round(count / seconds, 2),
    )  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--kill-every", type=int, default=5, help="completed trials between kills")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds per fake trial")
    parser.add_argument("--storages", nargs="+", default=["postgres", "journal"], choices=["postgres", "journal", "sqlite"])
    parser.add_argument("--rating", nargs=argparse.REMAINDER, default=None, metavar="RANK_ARGS",
                        help="rating mode: the `ssnas rank` arguments of the shared rating (e.g. --all --space nb201 "
                             "--data DIR); --trials and --sleep are ignored, --kill-every counts chunks")
    parser.add_argument("--reference", type=Path, default=None,
                        help="rating mode: one process's scores.csv of the same rating, compared byte for byte")
    parser.add_argument("--heartbeat", type=int, default=10, help="rating mode: heartbeat interval (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per storage before giving up")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_soak")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    if args.rating is not None:
        return rating_main(args)
    for kind in args.storages:
        log = args.work / f"{kind}.log"
        log.write_text("")
        if kind == "postgres":
            from _pg import postgres_server

            with postgres_server("ssnas_soak") as url:
                results.append(soak(url, "soak", args.workers, args.trials, args.kill_every, args.sleep, args.seed, log,
                                    timeout=args.timeout))  # fmt: skip
        else:
            journal = args.work / "soak.journal"
            for stale in args.work.glob("soak.journal*"):
                stale.unlink()
            results.append(soak(str(journal), "soak", args.workers, args.trials, args.kill_every, args.sleep, args.seed,
                                log, timeout=args.timeout))  # fmt: skip
        print(json.dumps(asdict(results[-1])), flush=True)
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "results": [asdict(r) for r in results],
        "target_met": all(r.completed == r.trials and r.duplicated == 0 and r.lost == 0 for r in results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))


def rating_main(args: argparse.Namespace) -> None:
    """--rating: one soak per storage of a shared `ssnas rank` rating."""
    from bench_rankers import cpu_record

    results = []
    for kind in args.storages:
        log = args.work / f"rating-{kind}.log"
        log.write_text("")
        load_before = os.getloadavg()
        common = dict(processes=args.workers, kill_every=args.kill_every, seed=args.seed, rank_args=args.rating,
                      work=args.work, log=log, reference=args.reference, heartbeat=args.heartbeat, timeout=args.timeout)
        if kind == "postgres":
            from _pg import postgres_server

            with postgres_server("ssnas_soak_rating") as url:
                result = soak_rating(url, "soak-rating", **common)  # type: ignore[arg-type]
        elif kind == "sqlite":
            database = args.work / "soak-rating.db"
            database.unlink(missing_ok=True)
            result = soak_rating(f"sqlite:///{database}", "soak-rating", **common)  # type: ignore[arg-type]
        else:
            journal = args.work / "soak-rating.journal"
            for stale in args.work.glob("soak-rating.journal*"):
                stale.unlink()
            result = soak_rating(str(journal), "soak-rating", **common)  # type: ignore[arg-type]
        results.append({**asdict(result), "load_before": load_before, "load_after": os.getloadavg()})
        print(json.dumps(results[-1]), flush=True)
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": cpu_record(),
        "results": results,
        "target_met": all(r["lost"] == 0 and r["duplicated"] == 0 and r["rows"] == r["unique_archs"] == r["architectures"]
                          and r["equal_to_one_process"] is not False for r in results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        main()

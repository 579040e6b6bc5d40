"""A rating shared through an Optuna storage: `ssnas rank --storage` plus `ssnas worker`s, killed
at will, merge into the same scores.csv as one process (journal file, SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import optuna
import pytest
from cli_helpers import SSNAS, run_ssnas
from test_cli import assert_one_line_error
from test_rank_stream import RATING, cifar, reference  # noqa: F401 - fixtures: the same cells, one process's scores
from test_storage import pg_url, storage_url  # noqa: F401 - fixtures: journal, SQLite, PostgreSQL

from ssnas.faults import KILL_ENV
from ssnas.rating.shared import (
    CHUNK_ATTR,
    WORKER_ATTR,
    SharedStudy,
    chunk_progress,
    open_rating,
    work_on_chunks,
)
from ssnas.studies import FAIL_REASON_ATTR, Liveness, open_storage

ENV = {"OMP_NUM_THREADS": "1"}
SHARED = ["--chunk-size", "4"]  # RATING (40 NB201 cells, the default ranker on images) in 10 chunks
CHUNKS = 10


def _trials(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    storage, _ = open_storage(url, SharedStudy(url, study).study_config())
    return storage.get_all_trials(storage.get_study_id_from_name(study), deepcopy=False)


def test_killed_workers_chunks_are_retaken_and_the_merge_equals_one_process(
    storage_url: str, cifar: str, reference: bytes, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The starting command is SIGKILLed holding its first chunk, a worker on its third; a second
    worker retakes both chunks (stale heartbeats) and rates the rest; the starting command resumed
    writes scores.csv byte-identical to one process's."""
    study = f"shared-{request.node.callspec.id}"
    out = tmp_path / "run"
    start = [*RATING, *SHARED, "--data", cifar, "--out", str(out), "--storage", storage_url, "--study", study,
             "--heartbeat-interval", "1"]  # fmt: skip
    killed = run_ssnas(*start, env={**ENV, KILL_ENV: "chunk:1"})
    assert killed.returncode == -9, killed.stderr
    worker = ["worker", "--study", study, "--storage", storage_url, "--data", cifar, "--json"]
    first = run_ssnas(*worker, env={**ENV, KILL_ENV: "chunk:3"})
    assert first.returncode == -9, first.stderr
    second = run_ssnas(*worker, env=ENV)
    assert second.returncode == 0, second.stderr
    done = json.loads(second.stdout)
    assert (done["chunks"], done["chunks_rated"]) == (CHUNKS, CHUNKS - 2)  # 2 stored by the first worker

    trials = _trials(storage_url, study)
    lost = [t for t in trials if t.state.name == "FAIL"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(lost) == 2 and all("surplus" not in t.user_attrs.get(FAIL_REASON_ATTR, "") for t in lost)
    retaken = [t for t in complete if "failed_trial" in t.system_attrs]  # the stale trials' re-queued copies
    assert sorted(t.params["chunk"] for t in retaken) == sorted(t.params["chunk"] for t in lost)
    assert sorted(t.params["chunk"] for t in complete) == list(range(CHUNKS))

    resumed = run_ssnas(*start, "--resume", env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "scores.csv").read_bytes() == reference
    config = (out / "config.yaml").read_text()
    assert f"study: {study}" in config and "storage:" in config


def test_two_workers_at_once_share_the_chunks(cifar: str, reference: bytes, tmp_path: Path) -> None:
    """The starting command and two workers running side by side: each chunk is rated once, by
    whichever took it, and the merge equals one process's."""
    journal = str(tmp_path / "rating.journal")
    out = tmp_path / "run"
    env = {**os.environ, **ENV}
    starter = subprocess.Popen([*SSNAS, *RATING, *SHARED, "--data", cifar, "--out", str(out), "--storage", journal],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    worker = [*SSNAS, "worker", "--study", "ssnas-rating", "--storage", journal, "--data", cifar, "--json"]
    workers = []
    for _ in range(2):  # a worker started before the study exists is refused: start once it does
        while b"ssnas:rating" not in (Path(journal).read_bytes() if Path(journal).exists() else b""):
            assert starter.poll() is None, starter.communicate()
        workers.append(subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
    outputs = [p.communicate(timeout=600) for p in (starter, *workers)]
    assert all(p.returncode == 0 for p in (starter, *workers)), [o[1][-500:] for o in outputs]
    assert (out / "scores.csv").read_bytes() == reference
    complete = [t for t in _trials(journal, "ssnas-rating") if t.state.name == "COMPLETE"]
    assert sorted(t.params["chunk"] for t in complete) == list(range(CHUNKS))
    assert sum(json.loads(o[0])["chunks_rated"] for o in outputs[1:]) == CHUNKS - sum(
        t.user_attrs[WORKER_ATTR].endswith(f":{starter.pid}") for t in complete)


def test_a_chunk_whose_requeue_was_cut_off_is_queued_again(tmp_path: Path) -> None:
    """A chunk with no COMPLETE, RUNNING or WAITING trial (its re-queue was killed too) is enqueued
    again once nothing else is left, so no chunk is ever lost."""
    shared = SharedStudy(str(tmp_path / "r.journal"), "r", heartbeat_interval=1, poll_interval=0.05)
    study, liveness = open_rating(shared, {"space": "nb201", "ranker": "x"}, chunks=3)
    taken = study.ask()  # chunk 0, then failed without a retry: as if the re-queue never happened
    study.tell(taken, state=optuna.trial.TrialState.FAIL)
    rated = work_on_chunks(study, liveness, lambda k: f"arch,seconds\nc{k},0.0\n", shared, "test")
    assert sorted(rated) == [0, 1, 2]
    state = chunk_progress(study, 3)
    assert state.texts == {k: f"arch,seconds\nc{k},0.0\n" for k in range(3)} and state.duplicates == 0


def test_workers_racing_for_chunks_rate_each_once(tmp_path: Path) -> None:
    """Four threads with their own storage handles on one journal: every chunk rated exactly once."""
    path = str(tmp_path / "r.journal")
    shared = SharedStudy(path, "r", heartbeat_interval=5, poll_interval=0.05)
    open_rating(shared, {"space": "nb201", "ranker": "x"}, chunks=24)
    taken: list[int] = []
    lock = threading.Lock()

    def rate(k: int) -> str:
        with lock:
            taken.append(k)
        return f"arch,seconds\nc{k},0.0\n"

    def worker(label: str) -> None:
        storage, _ = open_storage(path, shared.study_config())
        study = optuna.load_study(study_name="r", storage=storage)
        work_on_chunks(study, Liveness(), rate, shared, label)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(24))
    storage, _ = open_storage(path, shared.study_config())
    trials = storage.get_all_trials(storage.get_study_id_from_name("r"))
    assert sorted(t.params["chunk"] for t in trials if CHUNK_ATTR in t.user_attrs) == list(range(24))


def test_joining_with_other_settings_or_images_is_refused(cifar: str, tmp_path: Path) -> None:
    journal = str(tmp_path / "r.journal")
    first = run_ssnas(*RATING, *SHARED, "--data", cifar, "--out", str(tmp_path / "a"), "--storage", journal, env=ENV)
    assert first.returncode == 0, first.stderr
    other = run_ssnas(*RATING, *SHARED, "--ranker", "synflow", "--out", str(tmp_path / "b"), "--storage", journal,
                      env=ENV)  # fmt: skip
    assert_one_line_error(other, "rates other settings:", "ranker ('az-nas-ssl' -> 'synflow')")
    assert not (tmp_path / "b" / "ratings").exists()
    noise = tmp_path / "noise"
    noise.mkdir()
    from cli_helpers import noise_images

    noise_images(noise, 40)
    worker = run_ssnas("worker", "--study", "ssnas-rating", "--storage", journal, "--data", str(noise), env=ENV)
    assert_one_line_error(worker, "these images differ from the ones the rating was started with")


@pytest.mark.parametrize(("extra", "message"), [
    (["--workers", "2"], "start more `ssnas worker"),
    (["--archs", "ARCHS"], "a shared rating (--storage) rates --all or --sample N"),
])  # fmt: skip
def test_what_a_shared_rating_does_not_take_is_refused(extra: list[str], message: str, tmp_path: Path) -> None:
    archs = tmp_path / "archs.txt"
    archs.write_text("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|\n")
    command = ["rank", "--ranker", "synflow", "--out", str(tmp_path / "run"), "--storage", str(tmp_path / "j"),
               *[str(archs) if e == "ARCHS" else e for e in extra]]  # fmt: skip
    if "--archs" not in extra:
        command += ["--sample", "8"]
    done = run_ssnas(*command, env=ENV)
    assert_one_line_error(done, message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "j").exists()

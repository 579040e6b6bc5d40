"""Shared studies: several worker processes, killed workers, resumption; journal, SQLite, PostgreSQL.

Workers are real processes (`tests/_fake_worker.py`) with a cheap fake evaluator, so these
tests exercise the storage and budget machinery, not the proxy.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from _fake_worker import FakeEvaluate, fake_loss, fast_study_config, tiny_task
from _pg import postgres_server
from cli_helpers import run_ssnas
from PIL import Image

from ssnas.strategies.tpe import OptunaSearch
from ssnas.studies import masked_text, masked_url, open_storage

WORKER = Path(__file__).resolve().parent / "_fake_worker.py"
STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["journal", "sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "journal":
        return str(tmp_path / "study.journal")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return str(request.getfixturevalue("pg_url"))


def _trials(url: str, study_name: str) -> list:
    storage, _ = open_storage(url, fast_study_config())
    return storage.get_all_trials(storage.get_study_id_from_name(study_name), deepcopy=False)


def _states(trials: list) -> dict[str, int]:
    return {name: sum(t.state.name == name for t in trials) for name in STATES}


def _start_study(url: str, name: str, n_trials: int) -> None:
    OptunaSearch("tpe", study=fast_study_config(storage=url, study_name=name, n_trials=n_trials)).prepare(tiny_task())


def _spawn(url: str, name: str, n_trials: int, sleep: float, go: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, name, str(n_trials), str(sleep), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _check_values(trials: list) -> None:
    """Every COMPLETE trial holds the fake loss of its own parameters."""
    task = tiny_task()
    for t in trials:
        if t.state.name == "COMPLETE":
            arch = task.space.make([t.params[k] for k in task.space.choices()])
            assert t.value == pytest.approx(fake_loss(task.space, arch))
            assert t.user_attrs["arch"] == arch.key


def test_two_workers_complete_exactly_the_budget(storage_url: str, tmp_path: Path) -> None:
    name, n_trials = f"two-{tmp_path.name}", 14
    _start_study(storage_url, name, n_trials)
    go = tmp_path / "go"
    workers = [_spawn(storage_url, name, n_trials, 0.15, go) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outputs = [w.communicate(timeout=180)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    trials = _trials(storage_url, name)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # none duplicated, none lost
    states = _states(trials)
    assert states["COMPLETE"] == n_trials
    assert states["RUNNING"] == states["WAITING"] == 0
    assert all(t.user_attrs.get("ssnas:surplus") for t in trials if t.state.name == "FAIL")
    assert len({t.user_attrs["worker"] for t in trials if t.state.name == "COMPLETE"}) == 2  # both worked
    _check_values(trials)


def test_killed_worker_leaves_a_resumable_study(storage_url: str, tmp_path: Path) -> None:
    name, n_trials = f"kill-{tmp_path.name}", 6
    _start_study(storage_url, name, n_trials)
    go = tmp_path / "go"
    go.touch()
    worker = _spawn(storage_url, name, n_trials, 1.0, go)
    deadline = time.monotonic() + 120
    while True:  # kill it in the middle of its third trial
        assert time.monotonic() < deadline, "the worker never got going"
        assert worker.poll() is None, worker.communicate()[0].decode()
        trials = _trials(storage_url, name)
        states = _states(trials)
        if states["COMPLETE"] >= 2 and states["RUNNING"] == 1:
            break
        time.sleep(0.1)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    trials = _trials(storage_url, name)
    done_before = {t.number: (t.params, t.value) for t in trials if t.state.name == "COMPLETE"}
    (killed,) = [t for t in trials if t.state.name == "RUNNING"]

    task = tiny_task(resume=True)
    search = OptunaSearch(
        "tpe",
        study=fast_study_config(storage=storage_url, study_name=name, n_trials=n_trials),
        evaluate=FakeEvaluate(task.space, 0.05),
    )
    result = search.search(task)

    trials = _trials(storage_url, name)
    by_number = {t.number: t for t in trials}
    assert sorted(by_number) == list(range(len(trials)))
    assert _states(trials)["COMPLETE"] == n_trials
    assert _states(trials)["RUNNING"] == _states(trials)["WAITING"] == 0
    for number, (params, value) in done_before.items():  # completed trials intact
        assert by_number[number].state.name == "COMPLETE"
        assert (by_number[number].params, by_number[number].value) == (params, value)
    assert by_number[killed.number].state.name == "FAIL"
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state.name == "COMPLETE"
    assert killed.params.items() <= retry.params.items()  # what it had drawn is re-run, not redrawn
    _check_values(trials)
    assert result.info["complete"] == n_trials
    assert -result.best.score == min(t.value for t in trials if t.state.name == "COMPLETE")


def test_resume_without_flag_is_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "study.journal")
    task = tiny_task()
    search = OptunaSearch("random", study=fast_study_config(storage=url, n_trials=3), evaluate=FakeEvaluate(task.space))
    search.search(task)
    with pytest.raises(Exception, match="already has 3 trials"):
        search.search(task)
    more = OptunaSearch("random", study=fast_study_config(storage=url, n_trials=5), evaluate=FakeEvaluate(task.space))
    assert more.search(tiny_task(resume=True)).info["complete"] == 5


def test_worker_refuses_a_study_of_another_space(tmp_path: Path) -> None:
    from ssnas.errors import UserError
    from ssnas.strategies.tpe import run_worker

    url = str(tmp_path / "study.journal")
    _start_study(url, "s", 3)
    with pytest.raises(UserError, match="searches space 'nb201'"):
        run_worker("s", url, tiny_task("darts"), 3)
    with pytest.raises(UserError, match="no study 'other'"):
        run_worker("other", url, tiny_task(), 3)


def test_wrong_password_is_one_line_and_leaves_no_run_folder(tmp_path: Path) -> None:
    """`ssnas search` and `ssnas worker` with `--storage postgresql://user:WRONG@...`: one line
    naming the cause (password masked), exit 1, and the storage is checked before the run (or
    worker log) folder is made."""
    with postgres_server("ssnas_auth", password="right-secret") as url:
        wrong = url.replace(":right-secret@", ":wrong-secret@")
        for command in (["search", "--strategy", "tpe"], ["worker", "--study", "s"]):
            out = tmp_path / command[0]
            done = subprocess.run([sys.executable, "-m", "ssnas.cli.main", *command, "--storage", wrong,
                                   "--data", str(tmp_path / "no-images"), "--out", str(out)],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            assert done.returncode == 1, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("ssnas: error: cannot open storage postgresql://postgres:***@"), lines
            assert "password authentication failed" in lines[0] and "secret" not in done.stderr + done.stdout
            assert not out.exists()


def test_worker_with_a_missing_journal_creates_nothing(tmp_path: Path) -> None:
    journal, out = tmp_path / "nowhere" / "study.journal", tmp_path / "log"
    done = subprocess.run([sys.executable, "-m", "ssnas.cli.main", "worker", "--study", "s", "--storage", str(journal),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no study journal" in done.stderr and not journal.parent.exists() and not out.exists()


def test_a_journal_lock_left_by_a_killed_worker_is_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker SIGKILLed inside a journal write leaves the lock symlink behind. With a relative
    `--storage` path (run from the project folder) the next writer must still break it after the
    grace period rather than wait forever (Optuna stats the lock through the symlink)."""
    import ssnas.studies as studies

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(studies, "JOURNAL_LOCK_GRACE", 1)
    relative = "runs/study.journal"
    storage, _ = open_storage(relative, fast_study_config())
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "first")
    killed, _ = open_storage(relative, fast_study_config())  # another worker, opened the same way,
    killed._backend._lock.acquire()  # type: ignore[attr-defined]  # takes the lock and dies holding it
    started = time.monotonic()
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "second")
    assert time.monotonic() - started < 20
    assert {s.study_name for s in storage.get_all_studies()} == {"first", "second"}


def test_masked_url_hides_every_password_and_nothing_else() -> None:
    assert masked_url("postgresql://u:p%40ss:w@127.0.0.1:5432/db") == "postgresql://u:***@127.0.0.1:5432/db"
    assert masked_url("mysql+pymysql://root:toor@db/x") == "mysql+pymysql://root:***@db/x"
    assert (masked_url("postgresql://u@h/db?sslmode=require&password=qq&x=1")
            == "postgresql://u@h/db?sslmode=require&password=***&x=1")  # fmt: skip
    for untouched in ("postgresql://u@h:5432/db", "postgresql://h:5432/db", "sqlite:///runs/a:b@c.db",
                      "runs/x/study.journal", "/data/user:pw@host/study.journal"):  # fmt: skip
        assert masked_url(untouched) == untouched
    message = "could not parse postgresql+psycopg2://u:longpass@h/db; password=longpass; long%pass"
    assert masked_text(message, "postgresql://u:longpass@h/db") == "could not parse postgresql+psycopg2://u:***@h/db; " \
        "password=***; long%pass"


def test_a_run_folder_saved_with_a_password_resumes_on_the_masked_url(tmp_path: Path) -> None:
    """config.yaml of an older run holds the password: compared masked, and no message shows it."""
    from ssnas.errors import UserError
    from ssnas.run.jobs import _as_written
    from ssnas.runfolder import check_run_folder

    (tmp_path / "config.yaml").write_text("storage: postgresql://u:old-secret@h/db\n")
    check_run_folder(tmp_path, {"storage": "postgresql://u:***@h/db"}, True, (), as_written=_as_written)
    with pytest.raises(UserError, match="different settings") as refused:
        check_run_folder(tmp_path, {"storage": "postgresql://u:***@h/other"}, True, (), as_written=_as_written)
    assert "old-secret" not in str(refused.value)


def _flat_folder(folder: Path, count: int) -> Path:
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=generator).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def test_no_password_in_run_folders_logs_or_output(tmp_path: Path) -> None:
    """Issue 22.2: a search, its resume, a worker and `ssnas report` on a PostgreSQL storage with a
    password leave it in no file of their folders (binary included) and print it nowhere; the run
    folder's config.yaml holds the URL masked, and reading it back asks for the password."""
    password = "Pw-" + os.urandom(6).hex()
    data = _flat_folder(tmp_path / "images", 400)  # the worker takes tpe's floor: 128 training + 256 held-out
    run, worker = tmp_path / "run", tmp_path / "worker"
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    tiny = ["--study", "s", "--data", str(data), "--no-progress", "--json"]
    search = ["search", "--strategy", "random", "--out", str(run), "--trials", "2", "--epochs", "1", "--channels", "4",
              "--cells", "1", "--batch-size", "16", *tiny]  # fmt: skip
    with postgres_server("ssnas_secret", password=password) as url:
        assert f":{password}@" in url
        done = [run_ssnas(*search, "--storage", url, env=env)]
        assert done[-1].returncode == 0, done[-1].stderr[-3000:]
        done.append(run_ssnas(*search, "--storage", url, "--resume", env=env))  # matched on the masked URL
        assert done[-1].returncode == 0, done[-1].stderr[-3000:]
        done.append(run_ssnas("worker", "--storage", url, "--out", str(worker), *tiny[:-2], "--json", env=env))
        assert done[-1].returncode == 0, done[-1].stderr[-3000:]
        assert json.loads(done[-1].stdout)["storage"] == masked_url(url)
        done.append(run_ssnas("report", str(run), env=env))
        assert done[-1].returncode == 0, done[-1].stderr[-3000:]
        done.append(run_ssnas("search", "--config", str(run / "config.yaml"), "--out", str(tmp_path / "again"), env=env))
        lines = done[-1].stderr.strip().splitlines()
        assert done[-1].returncode == 1 and len(lines) == 1 and "password masked" in lines[0], lines
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["storage"] == masked_url(url) and saved["storage"].startswith("postgresql://postgres:***@127.0.0.1:")
    assert json.loads((run / "result.json").read_text())["info"]["storage"] == saved["storage"]
    files = [path for folder in (run, worker) for path in folder.rglob("*") if path.is_file()]
    assert {"config.yaml", "search.log", "result.json", "report.html"} <= {path.name for path in files}
    leaks = [str(path) for path in files if password.encode() in path.read_bytes()]
    leaks += [f"output of command {n}" for n, d in enumerate(done) if password in d.stdout + d.stderr]
    assert not leaks


def test_readme_examples_hold_no_secret() -> None:
    """Storage URLs in the README and the docs take the password from the environment (or leave it to PGPASSWORD)."""
    root = Path(__file__).resolve().parents[1]
    readme = "\n".join(path.read_text() for path in [root / "README.md", *sorted((root / "docs").rglob("*.md"))])
    logins = re.findall(r"[\w+]+://[^:/\s`]*:([^@\s`]*)@", readme)
    queries = re.findall(r"[?&](?:password|passwd|pwd)=([^&\s`]*)", readme, flags=re.IGNORECASE)
    assert all(secret.startswith("$") for secret in logins + queries), logins + queries


def test_a_postgres_host_that_never_answers_is_refused_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts the TCP connection and never speaks (a firewall, a hung host): the
    storage is refused in one line after the connect timeout instead of hanging the command."""
    import socket
    import time

    from ssnas import studies
    from ssnas.errors import UserError
    from ssnas.studies import StudyConfig

    monkeypatch.setattr(studies, "PG_CONNECT_TIMEOUT", 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"postgresql://user:secret@127.0.0.1:{silent.getsockname()[1]}/ssnas"
        started = time.monotonic()
        with pytest.raises(UserError, match="cannot open storage postgresql://user:\\*\\*\\*@") as refused:
            open_storage(url, StudyConfig())
        assert time.monotonic() - started < 20 and "secret" not in str(refused.value)


def test_a_worker_on_a_folder_below_the_floor_is_told_to_use_the_searchs_images(tmp_path: Path) -> None:
    """The worker cannot change the study's strategy, so its refusal names the floor and asks for
    the search's --data instead of suggesting --strategy (which `ssnas worker` does not take)."""
    from cli_helpers import noise_images

    url = str(tmp_path / "study.journal")
    _start_study(url, "s", 3)
    small = noise_images(tmp_path / "small", 100)
    done = run_ssnas("worker", "--study", "s", "--storage", url, "--data", str(small), "--out", str(tmp_path / "w"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "strategy 'tpe' needs at least" in lines[0] and "give it the search's --data" in lines[0]
    assert "--strategy" not in lines[0]

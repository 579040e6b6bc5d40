"""The short soak: a shared TPE study on the journal file, 2 workers, 20 trials, 3 workers
SIGKILLed in flight and restarted: exactly 20 complete, none lost, none duplicated
(the full run with 4 workers, 200 trials, PostgreSQL and journal is benchmarks/bench_soak.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_soak import soak  # noqa: E402


@pytest.mark.slow
def test_study_survives_three_killed_workers(tmp_path: Path) -> None:
    result = soak(str(tmp_path / "soak.journal"), "soak", workers=2, trials=20, kill_every=5, sleep=0.2, seed=0,
                  log=tmp_path / "workers.log", max_kills=3, timeout=600)  # fmt: skip
    log = (tmp_path / "workers.log").read_text()[-3000:]
    assert result.kills_survived == 3, log
    assert result.completed == 20 and result.duplicated == 0 and result.lost == 0, (result, log)
    assert result.worker_exit_codes == [0, 0], log

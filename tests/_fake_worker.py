"""A cheap stand-in for the proxy, and a worker process that uses it.

Importable (`fake_loss`, `FakeEvaluate`, `tiny_task`, `fast_study_config`) and runnable:

    python tests/_fake_worker.py STORAGE STUDY N_TRIALS SLEEP GO_FILE

waits until GO_FILE exists (so several workers start together), then joins the study
with `run_worker`, every trial sleeping SLEEP seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ssnas.spaces import Architecture, SearchSpace, create_space
from ssnas.strategies.base import SearchTask
from ssnas.strategies.proxy import TrialOutcome
from ssnas.strategies.tpe import run_worker
from ssnas.studies import StudyConfig


def fake_loss(space: SearchSpace, arch: Architecture) -> float:
    """A deterministic loss of the architecture: the sum of its option indices, plus a tie-breaker."""
    choices = space.choices()
    indices = [list(options).index(c) for options, c in zip(choices.values(), arch.choices)]
    return float(sum(indices)) + 1e-3 * float(sum(i * (j + 1) for j, i in enumerate(indices)))


class FakeEvaluate:
    """arch -> TrialOutcome(fake_loss) after `sleep` seconds; records the architectures seen."""

    def __init__(self, space: SearchSpace, sleep: float = 0.0) -> None:
        self.space, self.sleep = space, sleep
        self.seen: list[Architecture] = []

    def __call__(self, arch: Architecture) -> TrialOutcome:
        self.seen.append(arch)
        time.sleep(self.sleep)
        return TrialOutcome(fake_loss(self.space, arch), {"seconds": self.sleep})


def tiny_task(space_name: str = "nb201", out_dir: Path | None = None, resume: bool = False) -> SearchTask:
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    space = create_space(space_name)
    return SearchTask(space=space, images=images, holdout_images=images, out_dir=out_dir, resume=resume)


def fast_study_config(**overrides: object) -> StudyConfig:
    """Heartbeat every second, a dead worker's trial re-queued after 3 s, quick polling."""
    settings: dict[str, object] = {"heartbeat_interval": 1, "grace_period": 3, "poll_interval": 0.1}
    return StudyConfig(**{**settings, **overrides})  # type: ignore[arg-type]


def main(argv: list[str]) -> None:
    storage, study_name, n_trials, sleep, go = argv[0], argv[1], int(argv[2]), float(argv[3]), Path(argv[4])
    task = tiny_task()
    while not go.exists():
        time.sleep(0.02)
    evaluate = FakeEvaluate(task.space, sleep)
    run_worker(study_name, storage, task, n_trials, evaluate=evaluate, study_config=fast_study_config())


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1:])

"""Progress a person can see: a rich bar on a terminal, log lines everywhere.

Every stage (training, rating, BossNAS blocks) reports through `StageProgress`: it
writes `INFO` lines to the `ssnas` logger (so to `search.log`, and to stderr when the
CLI mirrors the log there because stderr is not a terminal) at the end of each epoch
and at most every `every_seconds` in between, each with the stage's position, rate
and ETA. The rich bar is drawn only when stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")
log = logging.getLogger("ssnas.progress")

# Seconds between two mid-stage progress lines (a line also ends every epoch).
EVERY_SECONDS = 30.0


def format_duration(seconds: float) -> str:
    """`3725` -> "1h02m", `250` -> "4m10s", `7.2` -> "7s" ("?" when unknown)."""
    if seconds != seconds or seconds == float("inf") or seconds < 0:  # NaN / inf
        return "?"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class StageProgress:
    """Position, rate and ETA of one stage with `total` units (steps, candidates, paths).

    Args:
        stage: name at the start of each line ("train", "rating", "BossNAS block 1").
        total: units in the stage; `completed` of them were done before (a resumed run).
        unit: what a unit is, for the lines ("steps", "candidates").
        bar: draw a rich bar (only honoured when stderr is a terminal).
        images_per_unit: images one unit processes, for an img/s figure (0 = none).
    """

    def __init__(self, stage: str, total: int, unit: str = "steps", bar: bool = False, completed: int = 0,
                 images_per_unit: int = 0, every_seconds: float = EVERY_SECONDS) -> None:  # fmt: skip
        self.stage, self.total, self.unit = stage, total, unit
        self.images_per_unit, self.every_seconds = images_per_unit, every_seconds
        self.start_completed, self.completed = completed, completed
        self.started = self.last_line = time.perf_counter()
        self._bar: Progress | None = None
        if bar and stderr_is_terminal():
            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )  # fmt: skip
            self._task = self._bar.add_task(stage, total=total, completed=completed, status="")

    def __enter__(self) -> StageProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    @property
    def units_per_second(self) -> float:
        elapsed = time.perf_counter() - self.started
        done = self.completed - self.start_completed
        return done / elapsed if elapsed > 0 and done > 0 else 0.0

    def eta_seconds(self) -> float:
        rate = self.units_per_second
        return (self.total - self.completed) / rate if rate > 0 else float("nan")

    def retotal(self, total: int) -> None:
        """Change the number of units (a time budget's plan, fixed once the stage runs)."""
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def update(self, completed: int, status: str = "", force_line: bool = False, **bar_fields: Any) -> None:
        """Move to `completed` units; log a line when forced or `every_seconds` passed since the last."""
        self.completed = completed
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, status=status, **bar_fields)
        now = time.perf_counter()
        if force_line or now - self.last_line >= self.every_seconds:
            self.last_line = now
            log.info("%s", self.line(status))

    def line(self, status: str = "") -> str:
        """`"train epoch 2/5: step 80/200 (40%), loss 4.1, 53 img/s, elapsed 1m30s, ETA 2m15s"`."""
        percent = 100.0 * self.completed / self.total if self.total else 100.0
        parts = [f"{self.stage}: {self.completed}/{self.total} {self.unit} ({percent:.0f}%)"]
        if status:
            parts.append(status)
        if self.images_per_unit:
            parts.append(f"{self.units_per_second * self.images_per_unit:.0f} img/s")
        parts.append(f"elapsed {format_duration(time.perf_counter() - self.started)}")
        parts.append(f"ETA {format_duration(self.eta_seconds())}")
        return ", ".join(parts)


def track(items: Iterable[T], stage: str, total: int, unit: str, bar: bool = False) -> Iterator[T]:
    """Iterate `items`, reporting progress of `stage` (lines every `EVERY_SECONDS` and at the end)."""
    with StageProgress(stage, total, unit=unit, bar=bar) as progress:
        log.info("%s: %d %s", stage, total, unit)
        for done, item in enumerate(items, start=1):
            yield item
            progress.update(done, force_line=done == total)


class StderrMirror(logging.StreamHandler):
    """The `ssnas` log on stderr, one plain line per record (installed when stderr is not a terminal)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(asctime)s ssnas: %(message)s", datefmt="%H:%M:%S"))
        self.setLevel(logging.INFO)


def mirror_log_to_stderr(enabled: bool) -> logging.Handler | None:
    """Install a `StderrMirror` on the `ssnas` logger when `enabled` and stderr is not a terminal."""
    if not enabled or stderr_is_terminal():
        return None
    root = logging.getLogger("ssnas")
    if any(isinstance(h, StderrMirror) for h in root.handlers):
        return None
    handler = StderrMirror()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


class LazyProgress:
    """A `StageProgress` created at the first `update(done, total)`, so a resumed or joined rating's bar
    starts at what was already rated (and its rate counts only this process's time)."""

    def __init__(self, stage: str, unit: str, bar: bool) -> None:
        self.stage, self.unit, self.bar = stage, unit, bar
        self.progress: StageProgress | None = None

    def __enter__(self) -> LazyProgress:
        return self

    def update(self, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = StageProgress(self.stage, total, self.unit, bar=self.bar, completed=done).__enter__()
        self.progress.update(done, force_line=done == total)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

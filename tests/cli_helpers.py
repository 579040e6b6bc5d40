"""Run the real `ssnas` command in a subprocess (as users do) and copy real CIFAR images."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SSNAS = [sys.executable, "-m", "ssnas.cli.main"]


def run_ssnas(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([*SSNAS, *args], capture_output=True, text=True, env=environment, timeout=timeout)


def copy_cifar_subset(shared_data: Path, destination: Path, per_class: int, split: str = "train") -> Path:
    """The first `per_class` JPEGs of each class of the real CIFAR-10 folder."""
    source = shared_data / "cifar10-jpeg" / split
    for class_dir in sorted(source.iterdir()):
        target = destination / split / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(image, target / image.name)
    return destination


def kill_once_written(process: subprocess.Popen[bytes], path: Path, timeout: float = 300) -> bool:
    """SIGKILL `process` as soon as `path` exists; False when it ended (or timed out) before that."""
    deadline = time.monotonic() + timeout
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is not None or not path.exists():
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True

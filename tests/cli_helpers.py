"""Run the real `ssnas` command in a subprocess (as users do) or in this process, check its
one-line refusals, and copy real CIFAR images."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import pytest

SSNAS = [sys.executable, "-m", "ssnas.cli.main"]


def missing_prerequisite(message: str) -> NoReturn:
    """A test's prerequisite (real data, a server binary, a browser) is absent: a failure in CI
    (CI=true: `make test` provides it), a skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_ssnas(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([*SSNAS, *args], capture_output=True, text=True, env=environment, timeout=timeout)


def run_in_process(*args: str) -> tuple[int, str, str]:
    """`ssnas ARGS` through the CLI entry point in this process: (exit code, stderr, stdout)."""
    from ssnas.cli.main import main

    err, out = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(list(args))
        except SystemExit as done:
            code = done.code
    return (code if isinstance(code, int) else 1), err.getvalue(), out.getvalue()


def one_line(message: str) -> str:
    """`message`, asserted to be one non-empty line (no character a terminal breaks a line at)."""
    lines = message.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"not one line: {message!r}"
    return lines[0]


def refusal_line(code: int, stderr: str) -> str:
    """The single `ssnas: error:` line of a refusal (exit != 0); anything else fails the test."""
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    line = one_line(stderr)
    assert line.startswith("ssnas: error: "), stderr
    return line


def file_contents(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` with its bytes: what "nothing written" and "nothing overwritten" compare."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def noise_images(folder: Path, count: int, seed: int = 0, size: int = 32) -> Path:
    """`count` seeded noise images, `size`x`size` PNG, in the flat folder `folder` (made if needed)."""
    import torch
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for i in range(count):
        pixels = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=generator).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def copy_cifar_subset(shared_data: Path, destination: Path, per_class: int, split: str = "train") -> Path:
    """The first `per_class` JPEGs of each class of the real CIFAR-10 folder."""
    source = shared_data / "cifar10-jpeg" / split
    for class_dir in sorted(source.iterdir()):
        target = destination / split / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(image, target / image.name)
    return destination


def flat_cifar_subset(shared_data: Path, destination: Path, per_class: int) -> Path:
    """The first `per_class` JPEGs of each class of the real CIFAR-10 training folder, in the flat
    folder `destination` (CLASS_NAME.jpg): unlabeled, as a user's own."""
    for class_dir in sorted((shared_data / "cifar10-jpeg" / "train").iterdir()):
        for image in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(image, destination / f"{class_dir.name}_{image.name}")
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

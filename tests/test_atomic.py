"""write_atomic / atomic_open: complete file, no temporary left, old file intact on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ssnas import atomic
from ssnas.atomic import atomic_open, write_atomic


def test_writes_text_and_bytes_completely(tmp_path: Path) -> None:
    target = tmp_path / "new" / "results.json"  # the folder is made
    write_atomic(target, "é" * 100_000)
    assert target.read_text(encoding="utf-8") == "é" * 100_000
    write_atomic(target, b"\x00\x01" * 10)
    assert target.read_bytes() == b"\x00\x01" * 10
    assert os.listdir(target.parent) == ["results.json"]  # no temporary file left


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_an_exception_while_writing_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_open(target) as stream:
            stream.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_a_failed_sync_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def broken(_: int) -> None:
        raise OSError("EIO")

    monkeypatch.setattr(atomic.os, "fsync", broken)
    with pytest.raises(OSError, match="EIO"):
        write_atomic(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]


def test_data_and_folder_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    write_atomic(tmp_path / "x.json", "{}")
    assert len(synced) == 2  # the file, then the folder holding the rename

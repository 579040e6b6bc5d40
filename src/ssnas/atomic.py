"""Atomic file writes: a reader (or a run resumed after a crash) sees the old file or the new one,
never a torn one.

The data goes to a temporary file in the target's folder (same file system, so the rename is
atomic), is flushed and fsynced, replaces the target with `os.replace`, and the folder is
fsynced so the rename itself survives a power cut. On an exception the temporary file is
removed and the old file is left as it was.

>>> write_atomic(run_dir / "results.json", json.dumps(results))     # doctest: +SKIP
>>> with atomic_open(run_dir / "ckpt.pt") as stream:                  # doctest: +SKIP
...     torch.save(state, stream)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary stream whose content replaces `path` when the block ends without an exception.

    The target's folder is created if needed; the new file gets the usual permissions (umask).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write `data` (text is UTF-8 encoded) to `path` atomically and durably."""
    with atomic_open(path) as stream:
        stream.write(data.encode() if isinstance(data, str) else data)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems refuse fsync on a folder; the data itself is synced
        pass
    finally:
        os.close(descriptor)


__all__ = ["atomic_open", "write_atomic"]

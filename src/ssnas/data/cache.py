"""On-disk cache of decoded image folders: content-keyed, written atomically.

A folder's key hashes its content listing (relative path, size, mtime of every file)
plus whatever else changes the decoded result (resolution, decoder version), so editing,
adding or touching any image gives a new key and the stale entry is simply never read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ssnas.atomic import atomic_open
from ssnas.paths import cache_dir


def fingerprint(listing: Iterable[tuple[str, int, int]], *extra: object) -> str:
    """SHA-256 hex digest of `(relative_path, size, mtime_ns)` rows and `extra` values."""
    digest = hashlib.sha256()
    for value in extra:
        digest.update(f"{value!r}\n".encode())
    for relative, size, mtime_ns in listing:
        digest.update(f"{relative}\t{size}\t{mtime_ns}\n".encode(errors="surrogateescape"))  # names of any bytes
    return digest.hexdigest()


def entry_path(namespace: str, key: str) -> Path:
    """Where the entry `key` lives: `cache_dir()/namespace/key.pt`."""
    return cache_dir() / namespace / f"{key}.pt"


def load_entry(namespace: str, key: str) -> dict[str, Any] | None:
    """The saved dict, or None when absent or unreadable (a damaged entry is a miss)."""
    path = entry_path(namespace, key)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn or foreign file is treated as a cache miss
        return None


def save_entry(namespace: str, key: str, payload: dict[str, Any]) -> Path:
    """Write `payload` with torch.save, atomically (`ssnas.atomic`)."""
    path = entry_path(namespace, key)
    with atomic_open(path) as stream:
        torch.save(payload, stream)
    return path

"""Where data, caches and benchmark tables live (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "SSNAS_DATA"
CACHE_ENV = "SSNAS_CACHE"
TABLE_ENV = "SSNAS_NB201_TABLE"


def cache_dir() -> Path:
    """`$SSNAS_CACHE`, else `$XDG_CACHE_HOME/ssnas`, else `~/.cache/ssnas`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ssnas"


def data_dir() -> Path:
    """`$SSNAS_DATA`, else `./data`."""
    return Path(os.environ.get(DATA_ENV, "data"))

"""Where data, caches and benchmark tables live (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path

from ssnas.errors import UserError

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


def expand_user(path: str | os.PathLike[str]) -> Path:
    """`path` with a leading `~` or `~user` expanded (UserError, not RuntimeError, for an unknown user)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # `~name` of a user that does not exist, or no home folder at all
        raise UserError(f"cannot expand {str(path)!r}: no such user or home folder") from None

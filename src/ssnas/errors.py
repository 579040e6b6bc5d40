"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input: a wrong path, a corrupt image, an unknown name, a malformed string."""


class TrainingDiverged(UserError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def corrupt(path: Path, reason: object) -> UserError:
    """The one-line error for a damaged run-folder file: which file, why, and what to do."""
    why = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
    return UserError(f"{path} is corrupt or truncated ({why}); delete it to redo its part with --resume, "
                     "or start over with another --out")  # fmt: skip

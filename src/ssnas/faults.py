"""A test hook: SIGKILL this process at a named point of a run, to test that runs survive it.

    SSNAS_KILL_AT=rate:2 ssnas search ...   # killed on reaching the point 'rate' the 2nd time

Points: 'train' (after each optimizer step of `ssnas.training.loop.train`), 'rate' (before each
candidate is rated), 'write' (after result.json, before candidates.csv), 'chunk' (a shared
rating's worker: a chunk rated, before it is stored). With the variable unset
(always, outside tests) a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "SSNAS_KILL_AT"
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL when `$SSNAS_KILL_AT` is `name[:n]` and this is the n-th hit."""
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    point, _, count = target.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["KILL_ENV", "fault_point"]

"""ssnas: label-free neural architecture search (CSNAS, SETN, BossNAS)."""

from __future__ import annotations

import time as _time

__version__ = "0.1.0"

# When this process imported ssnas: a command's time budget counts from here (imports included).
PROCESS_STARTED = _time.monotonic()

"""When this process first imported ssnas (`time.monotonic()`): a command's time budget counts from here."""

from __future__ import annotations

import time

PROCESS_STARTED = time.monotonic()

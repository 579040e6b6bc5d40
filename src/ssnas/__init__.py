"""ssnas: label-free neural architecture search (CSNAS, SETN, BossNAS)."""

from __future__ import annotations

__version__ = "0.1.0"

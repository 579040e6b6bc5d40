"""Ground truth to rank against: tabular NAS benchmarks (NB201, NATS size space) and which space has which."""

from __future__ import annotations

from ssnas.groundtruth.tables import (
    SPACE_TABLES,
    TABLES,
    BenchmarkTable,
    find_table,
    load_nb201,
    load_nb201_hp12,
    load_space_table,
    space_table,
)

__all__ = [
    "SPACE_TABLES",
    "TABLES",
    "BenchmarkTable",
    "find_table",
    "load_nb201",
    "load_nb201_hp12",
    "load_space_table",
    "space_table",
]

"""Tabular NAS benchmarks (ground truth to rank against)."""

from __future__ import annotations

from ssnas.groundtruth.tables import TABLES, BenchmarkTable, find_table, load_nb201, load_nb201_hp12

__all__ = ["TABLES", "BenchmarkTable", "find_table", "load_nb201", "load_nb201_hp12"]

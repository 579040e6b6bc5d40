"""Tabular NAS benchmarks: architecture key -> ground-truth metrics (NAS-Bench-201).

A table is a CSV with an `index` column (the benchmark's own architecture index), an
`arch_str` column (the architecture key, e.g. NB201's `|op~0|+|op~0|op~1|+...`) and one
numeric column per metric, e.g. `cifar10_valid, ..., params_M` in `nb201.csv` or the
12-epoch `cifar10_valid, cifar10_test, cifar100_valid, ...` of `nb201_hp12.csv`.

>>> table = TABLES.create("nb201")                               # doctest: +SKIP
>>> table.query("|nor_conv_3x3~0|+|...|", "cifar10_test")        # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ssnas.errors import UserError
from ssnas.paths import TABLE_ENV
from ssnas.registry import Registry

if TYPE_CHECKING:  # the table itself needs no torch
    from ssnas.spaces.base import Architecture

KEY_COLUMN = "arch_str"
INDEX_COLUMN = "index"
HP12_TABLE_ENV = "SSNAS_NB201_HP12_TABLE"
NATS_TABLE_ENV = "SSNAS_NATS_TABLE"


class BenchmarkTable:
    """Ground-truth metrics of every architecture of a tabular benchmark (read-only).

    Rows keep the file's order; `column(metric)` gives one metric as a float array in
    that order, aligned with `keys()` and `indices()`.
    """

    def __init__(
        self,
        keys: Sequence[str],
        indices: Sequence[int],
        metric_names: Sequence[str],
        values: np.ndarray,
        source: str = "<memory>",
    ) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(keys), len(metric_names)) or len(indices) != len(keys):
            raise ValueError(
                f"values of shape {values.shape} do not fit {len(keys)} keys, "
                f"{len(indices)} indices and {len(metric_names)} metrics"
            )
        self.source = source
        self._keys = list(keys)
        self._indices = np.asarray(indices, dtype=np.int64)
        self._metric_names = list(metric_names)
        self._metric_column = {name: j for j, name in enumerate(self._metric_names)}
        self._values = values.copy()  # (num_archs, num_metrics)
        self._values.setflags(write=False)
        self._indices.setflags(write=False)
        self._row: dict[str, int] = {}
        for i, key in enumerate(self._keys):
            if key in self._row:
                raise UserError(f"benchmark table {source}: architecture {key!r} appears twice")
            self._row[key] = i

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> BenchmarkTable:
        """Read a benchmark CSV; UserError for a missing file or a malformed table."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"benchmark table {path} does not exist")
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise UserError(f"benchmark table {path} is empty (no header row)")
            header = [name.strip() for name in header]
            missing = [c for c in (INDEX_COLUMN, KEY_COLUMN) if c not in header]
            metric_names = [c for c in header if c not in (INDEX_COLUMN, KEY_COLUMN)]
            if missing or not metric_names:
                raise UserError(
                    f"benchmark table {path} is malformed: needs columns {INDEX_COLUMN}, "
                    f"{KEY_COLUMN} and at least one metric; found {', '.join(header)}"
                )
            key_at, index_at = header.index(KEY_COLUMN), header.index(INDEX_COLUMN)
            metric_at = [header.index(name) for name in metric_names]
            keys: list[str] = []
            indices: list[int] = []
            rows: list[list[float]] = []
            for record in reader:
                where = f"benchmark table {path}, line {reader.line_num}"
                if not record:
                    continue
                if len(record) != len(header):
                    raise UserError(f"{where}: expected {len(header)} fields, got {len(record)}")
                try:
                    indices.append(int(record[index_at]))
                except ValueError:
                    raise UserError(f"{where}: index {record[index_at]!r} is not an integer") from None
                keys.append(record[key_at].strip())
                rows.append([_number(record[j], header[j], where) for j in metric_at])
        if not keys:
            raise UserError(f"benchmark table {path} has no rows")
        return cls(keys, indices, metric_names, np.array(rows), source=str(path))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, arch_or_key: object) -> bool:
        return _key(arch_or_key) in self._row

    def keys(self) -> list[str]:
        """Architecture keys in file order."""
        return list(self._keys)

    def indices(self) -> np.ndarray:
        """The benchmark index of each row, (num_archs,) int64, aligned with `keys()`."""
        return self._indices

    def metric_names(self) -> list[str]:
        return list(self._metric_names)

    def column(self, metric: str) -> np.ndarray:
        """One metric for every row, (num_archs,) float64, aligned with `keys()`."""
        return self._values[:, self._metric_index(metric)]

    def row_of(self, arch_or_key: Architecture | str) -> int:
        """Position of the architecture in file order."""
        key = _key(arch_or_key)
        try:
            return self._row[key]
        except KeyError:
            raise UserError(f"architecture {key!r} is not in the benchmark table {self.source}") from None

    def index_of(self, arch_or_key: Architecture | str) -> int:
        """The benchmark's own index of an architecture (NB201: 0..15624)."""
        return int(self._indices[self.row_of(arch_or_key)])

    def metrics(self, arch_or_key: Architecture | str) -> dict[str, float]:
        """Every metric of one architecture."""
        row = self._values[self.row_of(arch_or_key)]
        return {name: float(row[j]) for j, name in enumerate(self._metric_names)}

    def query(self, arch_or_key: Architecture | str, metric: str) -> float:
        """One metric of one architecture."""
        return float(self._values[self.row_of(arch_or_key), self._metric_index(metric)])

    def _metric_index(self, metric: str) -> int:
        try:
            return self._metric_column[metric]
        except KeyError:
            raise UserError(
                f"unknown metric {metric!r} in benchmark table {self.source}; "
                f"valid metrics: {', '.join(self._metric_names)}"
            ) from None


def _key(arch_or_key: object) -> str:
    """An Architecture's key, or the string itself."""
    return arch_or_key if isinstance(arch_or_key, str) else str(getattr(arch_or_key, "key", arch_or_key))


def _number(text: str, column: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{where}: column {column} value {text!r} is not a number") from None


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]  # src/ssnas/benchmarks/tables.py -> repo


def find_table(filename: str = "nb201.csv", env: str = TABLE_ENV) -> Path:
    """Locate a benchmark CSV: `$env`, else `../shared/data/benchmarks/<filename>`
    relative to the current directory, then to the repository root."""
    if os.environ.get(env):
        path = Path(os.environ[env])
        if not path.is_file():
            raise UserError(f"${env} points at {path}, which does not exist")
        return path
    if env != TABLE_ENV and os.environ.get(TABLE_ENV):  # a sibling of the main table
        sibling = Path(os.environ[TABLE_ENV]).with_name(filename)
        if sibling.is_file():
            return sibling
    candidates = [
        Path.cwd() / ".." / "shared" / "data" / "benchmarks" / filename,
        _repo_root() / ".." / "shared" / "data" / "benchmarks" / filename,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise UserError(
        f"benchmark table {filename} not found (looked in {', '.join(str(c) for c in candidates)}); "
        f"set ${env} to its path or pass --table"
    )


TABLES: Registry[BenchmarkTable] = Registry("benchmark table")


@TABLES.register("nb201")
def load_nb201(path: str | os.PathLike[str] | None = None) -> BenchmarkTable:
    """NAS-Bench-201 200-epoch ground truth (`nb201.csv`), from `path` or `find_table()`."""
    return BenchmarkTable.from_csv(path if path is not None else find_table("nb201.csv"))


@TABLES.register("nb201_hp12")
def load_nb201_hp12(path: str | os.PathLike[str] | None = None) -> BenchmarkTable:
    """NAS-Bench-201 after 12 epochs (`nb201_hp12.csv`): a low-fidelity signal, not truth."""
    if path is None:
        path = find_table("nb201_hp12.csv", env=HP12_TABLE_ENV)
    return BenchmarkTable.from_csv(path)


@TABLES.register("nats-sss")
def load_nats_sss(path: str | os.PathLike[str] | None = None) -> BenchmarkTable:
    """NATS-Bench size space, all 32,768 width settings (`nats_sss.csv`): cifar10_valid is one
    90-epoch run on the CIFAR-10 train half; keys are `C0:C1:C2:C3:C4` as in the `nats-size` space."""
    if path is None:
        path = find_table("nats_sss.csv", env=NATS_TABLE_ENV)
    return BenchmarkTable.from_csv(path)


# The tables that hold ground truth for each space (the first is the default). The one place
# that maps spaces to tables: read it through `space_table` / `load_space_table`.
SPACE_TABLES: dict[str, tuple[str, ...]] = {"nb201": ("nb201", "nb201_hp12"), "nats-size": ("nats-sss",)}


def space_table(space: str) -> str | None:
    """The name (in `TABLES`) of the default ground-truth table of `space`; None if it has none."""
    names = SPACE_TABLES.get(space)
    return names[0] if names else None


def load_space_table(space: str, path: str | os.PathLike[str] | None = None) -> BenchmarkTable:
    """The ground truth of `space`: the CSV at `path` if given, else the space's default table.

    UserError when `path` is None and the space has no table (naming the spaces that have one).
    """
    name = space_table(space)
    if name is None and path is None:
        raise UserError(f"space {space!r} has no benchmark table; give a table CSV "
                        f"(spaces with one: {', '.join(SPACE_TABLES)})")  # fmt: skip
    return TABLES.create(name or "nb201", path=path)  # every table is the same CSV format

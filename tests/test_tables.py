"""BenchmarkTable: reading benchmark CSVs, queries, errors, default locations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssnas.groundtruth import TABLES, BenchmarkTable, find_table, load_space_table, space_table
from ssnas.groundtruth import tables as tables_module
from ssnas.errors import UserError
from ssnas.spaces.nb201 import NB201Space

HEADER = "index,arch_str,cifar10_valid,params_M\n"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def small(tmp_path: Path) -> BenchmarkTable:
    return BenchmarkTable.from_csv(write(tmp_path, HEADER + "7,a,91.5,1.07\n3,b,80.25,0.5\n"))


def test_queries(small: BenchmarkTable) -> None:
    assert len(small) == 2
    assert small.keys() == ["a", "b"]
    assert small.metric_names() == ["cifar10_valid", "params_M"]
    assert small.metrics("b") == {"cifar10_valid": 80.25, "params_M": 0.5}
    assert small.query("a", "params_M") == 1.07
    assert small.index_of("b") == 3
    np.testing.assert_array_equal(small.column("cifar10_valid"), [91.5, 80.25])
    np.testing.assert_array_equal(small.indices(), [7, 3])
    assert "a" in small and "c" not in small


def test_accepts_architectures(tmp_path: Path) -> None:
    space = NB201Space()
    arch = space.parse(BEST)
    table = BenchmarkTable.from_csv(write(tmp_path, HEADER + f"6111,{BEST},91.6,1.073466\n"))
    assert arch in table
    assert table.query(arch, "cifar10_valid") == 91.6
    assert table.index_of(arch) == 6111


def test_columns_are_read_only(small: BenchmarkTable) -> None:
    with pytest.raises(ValueError):
        small.column("params_M")[0] = 3.0


def test_unknown_architecture_and_metric(small: BenchmarkTable) -> None:
    with pytest.raises(UserError, match="architecture 'zzz' is not in the benchmark table"):
        small.metrics("zzz")
    with pytest.raises(UserError, match="unknown metric 'top1'.*valid metrics: cifar10_valid, params_M"):
        small.query("a", "top1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("index,cifar10_valid\n1,2.0\n", "needs columns index, arch_str"),
        ("index,arch_str\n1,a\n", "at least one metric"),
        (HEADER, "has no rows"),
        (HEADER + "1,a,90.0\n", "line 2: expected 4 fields, got 3"),
        (HEADER + "1,a,90.0,1\n2,b,n/a,1\n", "line 3: column cifar10_valid value 'n/a' is not a number"),
        (HEADER + "x,a,90.0,1\n", "index 'x' is not an integer"),
        (HEADER + "1,a,90.0,1\n2,a,91.0,1\n", "'a' appears twice"),
    ],
)
def test_malformed_tables_name_the_fault(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError, match="benchmark table") as info:
        BenchmarkTable.from_csv(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        BenchmarkTable.from_csv(tmp_path / "nope.csv")


def test_space_tables_live_in_one_place(tmp_path: Path) -> None:
    assert (space_table("nb201"), space_table("nats-size"), space_table("darts")) == ("nb201", "nats-sss", None)
    assert all(name in TABLES.names() for name in (space_table("nb201"), space_table("nats-size")))
    with pytest.raises(UserError, match="space 'darts' has no benchmark table.*nb201, nats-size"):
        load_space_table("darts")
    given = load_space_table("darts", write(tmp_path, HEADER + "7,a,91.5,1.07\n"))  # a CSV given is read as is
    assert given.keys() == ["a"]


def test_find_table_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables_module, "_repo_root", lambda: tmp_path / "elsewhere")
    monkeypatch.setenv("SSNAS_NB201_TABLE", str(tmp_path / "missing.csv"))
    with pytest.raises(UserError, match="SSNAS_NB201_TABLE points at .*missing.csv"):
        find_table()
    monkeypatch.delenv("SSNAS_NB201_TABLE")
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    with pytest.raises(UserError, match=r"set \$SSNAS_NB201_TABLE to its path"):
        find_table()
    shared = tmp_path / "shared" / "data" / "benchmarks"
    shared.mkdir(parents=True)
    write(shared, HEADER + "0,a,1,1\n", "nb201.csv")
    write(shared, "index,arch_str,cifar10_valid\n0,a,2\n", "nb201_hp12.csv")
    assert TABLES.create("nb201").query("a", "params_M") == 1.0
    assert TABLES.create("nb201_hp12").query("a", "cifar10_valid") == 2.0
    monkeypatch.setenv("SSNAS_NB201_TABLE", str(write(tmp_path, HEADER + "0,a,3,3\n", "mine.csv")))
    assert TABLES.create("nb201").query("a", "params_M") == 3.0


def test_real_nb201_facts(nb201_csv: Path) -> None:
    table = TABLES.create("nb201", path=nb201_csv)
    assert len(table) == 15_625
    assert sorted(table.indices().tolist()) == list(range(15_625))
    for metric, best, index in (
        ("cifar10_test", 94.37, 6111),
        ("cifar100_test", 73.51, 9930),
        ("imagenet16_test", 47.31, 857),
    ):
        column = table.column(metric)
        assert round(float(column.max()), 2) == best
        assert table.index_of(table.keys()[int(column.argmax())]) == index
    assert table.index_of(BEST) == 6111


def test_real_hp12_table_has_its_own_metrics(nb201_csv: Path) -> None:
    table = TABLES.create("nb201_hp12", path=nb201_csv.with_name("nb201_hp12.csv"))
    assert table.metric_names() == [
        "cifar10_valid", "cifar10_test", "cifar100_valid", "cifar100_test", "imagenet16_valid", "imagenet16_test",
    ]
    assert len(table) == 15_625 and BEST in table

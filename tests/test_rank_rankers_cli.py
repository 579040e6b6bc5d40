"""`ssnas rank --ranker ...` through a real subprocess on real CIFAR-10 images and the real tables."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from scipy.stats import rankdata

from cli_helpers import run_ssnas
from ssnas.rating import ranker_names
from test_cli import assert_one_line_error


@pytest.fixture(scope="module")
def cifar(shared_data: Path) -> str:
    return str(shared_data / "cifar10-jpeg")


def test_az_nas_on_200_unseen_cells_beats_the_parameter_count(cifar: str, nb201_csv: Path) -> None:
    """The issue's acceptance command (in two worker processes); AZ-NAS must beat the size
    baseline on the same cells."""
    result = run_ssnas("rank", "--ranker", "az-nas", "--sample", "200", "--seed", "3", "--data", cifar, "--json",
                       "--table", str(nb201_csv), "--workers", "2", timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ranker"] == "az-nas" and report["count"] == 200
    assert report["spearman_rho"] > report["baseline"]["spearman_rho"]
    assert report["seconds_per_arch"] > 0 and report["workers"] == 2 and report["wall_seconds"] > 0


NEW_RANKERS = ["az-nas", "az-nas-ssl", "az-synflow", "az-expressivity", "az-progressivity", "az-trainability", "swap", "zico-ssl", "snip-ssl",
               "gradnorm-ssl", "meco+az-nas"]


def test_every_ranker_is_registered() -> None:
    assert {"params", "flops", "meco", "naswot", "synflow", *NEW_RANKERS[:-1]} <= set(ranker_names())


@pytest.mark.parametrize("ranker", NEW_RANKERS)
def test_every_network_ranker_runs(ranker: str, cifar: str, nb201_csv: Path, tmp_path: Path) -> None:
    result = run_ssnas("rank", "--ranker", ranker, "--sample", "4", "--seed", "1", "--data", cifar, "--json",
                       "--batch-size", "8", "--table", str(nb201_csv), "--out", str(tmp_path / "s.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ranker"] == ranker and report["count"] == 4
    rows = (tmp_path / "s.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:2] == ["arch", "score"] and len(rows) == 5
    assert header[2:] and all(column in ranker_names() for column in header[2:])  # each signal's raw value


ENSEMBLE = ["meco", "naswot", "synflow", "effective-rank", "params"]


def test_log_rank_aggregation_changes_the_ensemble(cifar: str, nb201_csv: Path, tmp_path: Path) -> None:
    """Both rules on the same 12 cells: each score equals its rule applied by hand to the per-signal
    columns the CLI writes (mean over parts of rank/N; sum over parts of log(rank/N); ties share the mean
    rank), and the two rules order the cells differently, so the correlation with the table differs too."""
    tables, reports = {}, {}
    for rule in ("mean-rank", "log-rank"):
        out = tmp_path / f"{rule}.csv"
        result = run_ssnas("rank", "--ranker", "+".join(ENSEMBLE), "--aggregate", rule, "--sample", "12", "--seed", "2",
                           "--data", cifar, "--json", "--batch-size", "8", "--table", str(nb201_csv), "--out", str(out))  # fmt: skip
        assert result.returncode == 0, result.stderr
        reports[rule] = json.loads(result.stdout)
        with out.open(newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == ["arch", "score", *ENSEMBLE]
            tables[rule] = list(reader)
    mean_rows, log_rows = tables["mean-rank"], tables["log-rank"]
    assert len(mean_rows) == 12 and [r["arch"] for r in mean_rows] == [r["arch"] for r in log_rows]
    for a, b in zip(mean_rows, log_rows):  # the signals do not depend on the rule
        assert [float(a[s]) for s in ENSEMBLE] == pytest.approx([float(b[s]) for s in ENSEMBLE], rel=1e-9)
    columns = {s: [float(r[s]) for r in mean_rows] for s in ENSEMBLE}
    assert all(math.isfinite(v) for values in columns.values() for v in values)  # no rated-last substitution here
    fractions = {s: rankdata(values) / len(values) for s, values in columns.items()}  # rank/N, higher value = higher rank
    by_hand = {
        "mean-rank": [sum(float(fractions[s][i]) for s in ENSEMBLE) / len(ENSEMBLE) for i in range(12)],
        "log-rank": [sum(math.log(fractions[s][i]) for s in ENSEMBLE) for i in range(12)],
    }
    for rule, rows in tables.items():
        assert [float(r["score"]) for r in rows] == pytest.approx(by_hand[rule], abs=1e-12), rule
    orders = {rule: sorted(range(12), key=lambda i: -by_hand[rule][i]) for rule in by_hand}
    assert len(set(by_hand["log-rank"])) == 12 and orders["mean-rank"] != orders["log-rank"]
    assert reports["mean-rank"]["spearman_rho"] != reports["log-rank"]["spearman_rho"]


def test_nats_size_ranks_against_its_table_with_its_own_default(cifar: str, shared_data: Path) -> None:
    result = run_ssnas("rank", "--space", "nats-size", "--sample", "6", "--seed", "0", "--data", cifar, "--json",
                       "--table", str(shared_data / "benchmarks" / "nats_sss.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["count"] == 6 and report["ranker"] == "az-synflow" and report["batch_size"] == 16


def test_bad_ranker_input_is_one_line(cifar: str, nb201_csv: Path) -> None:
    assert_one_line_error(run_ssnas("rank", "--ranker", "nope", "--sample", "5", "--table", str(nb201_csv)),
                          "unknown ranker 'nope'")  # fmt: skip
    assert_one_line_error(run_ssnas("rank", "--ranker", "meco+", "--sample", "5", "--table", str(nb201_csv)),
                          "malformed ranker")  # fmt: skip
    no_data = run_ssnas("rank", "--ranker", "meco", "--sample", "5", "--table", str(nb201_csv), env={"SSNAS_DATA": ""})
    assert_one_line_error(no_data, "--data")
    assert_one_line_error(run_ssnas("rank", "--space", "hytra", "--ranker", "params", "--sample", "3"),
                          "no benchmark table")  # fmt: skip

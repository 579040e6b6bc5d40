"""Two torchrun launchers as two "nodes" on 127.0.0.1 (c10d rendezvous, one process each) run
`ssnas pretrain` and `ssnas search --strategy setn` into one run folder with one report, and end
where one node with two processes does (the same global batch, shards and all-reduces); pretrain's
first loss also equals one process's (the objective is the global batch's in both)."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_helpers import SSNAS, copy_cifar_subset

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# Measured (issue 19) on a Xeon with avx512f + avx512_bf16 + amx_bf16 (torch 2.13 CPU, fp32, OMP_NUM_THREADS=1),
# and on the same CPU with its kernels capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2), pretrain
# seeds 0-5 and 3 reruns of seed 0, setn 3 reruns: two nodes x 1 process and one node x 2 processes differ by exactly
# 0.0 in every loss, weight and candidate score (same rows per rank, a sum over two ranks is commutative), and every
# launcher repeats itself bit for bit. A nonzero difference is different arithmetic, not rounding.
SAME_ARITHMETIC_TOL = 1e-6
# One process against two, the untrained network's loss on the first global batch: at most 6.0e-7 apart over those
# 12 seed x kernel runs (summation order only; ~16x margin). Later losses and the weights are not compared with one
# process: a ReLU input within fp32 rounding of zero lands on the other side in one of the two runs and moves that
# step's gradient by ~1e-3 relative, which a few SGD steps grow to 0.011 in loss and 0.11 in weights (seed 0 with
# AVX-512 convolutions; 4 of 6 seeds miss 1e-4 on either kernel set). tests/test_distributed_equality.py checks one
# process's gradients and trained weights on inputs where that does not happen.
FIRST_LOSS_TOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_nodes(args: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """`torchrun --nnodes 2 --node-rank r` for r = 0, 1, started together; their results."""
    port = _free_port()
    launchers = [
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
                          "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                          "--rdzv-id", "ssnas-test", "-m", "ssnas.cli.main", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [launcher.communicate(timeout=900) for launcher in launchers]
    return [subprocess.CompletedProcess(l.args, l.returncode, o, e) for l, (o, e) in zip(launchers, outputs)]


def one_node(args: list[str], processes: int = 1) -> subprocess.CompletedProcess[str]:
    """One machine: one plain process, or `torchrun --standalone` with `processes` processes."""
    launcher = SSNAS if processes == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                              "--nproc-per-node", str(processes), "-m", "ssnas.cli.main"]  # fmt: skip
    return subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=900, env=ENV)


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def _reports(done: list[subprocess.CompletedProcess[str]]) -> list[dict]:
    for node in done:
        assert node.returncode == 0, node.stderr[-3000:]
    return [json.loads(line) for node in done for line in node.stdout.splitlines() if line.startswith("{")]


def test_pretrain_on_two_nodes_equals_one_node(shared_data: Path, tmp_path: Path) -> None:
    # 40 images at batch 32: one step per epoch, so history[0] is the loss of the untrained network's first batch
    data = copy_cifar_subset(shared_data, tmp_path / "cifar", per_class=4) / "train"
    common = ["pretrain", ARCH, "--objective", "simclr", "--data", str(data), "--channels", "8", "--cells", "1",
              "--epochs", "4", "--batch-size", "32", "--precision", "fp32", "--no-channels-last", "--no-progress",
              "--json"]  # fmt: skip
    reports = _reports(two_nodes([*common, "--out", str(tmp_path / "two")]))
    assert len(reports) == 1 and reports[0]["processes"] == 2  # one report, from process 0
    node = _reports([one_node([*common, "--out", str(tmp_path / "node")], processes=2)])[0]
    single = _reports([one_node([*common, "--out", str(tmp_path / "one")])])[0]
    assert reports[0]["steps"] == node["steps"] == single["steps"] == 4
    assert reports[0]["history"] == pytest.approx(node["history"], abs=SAME_ARITHMETIC_TOL)
    assert reports[0]["final_loss"] == pytest.approx(node["final_loss"], abs=SAME_ARITHMETIC_TOL)
    weights = torch.load(tmp_path / "two" / "model.pt")["state_dict"]
    reference = torch.load(tmp_path / "node" / "model.pt")["state_dict"]
    assert set(weights) == set(reference)
    for name, value in reference.items():
        if torch.is_tensor(value) and value.is_floating_point():
            assert torch.allclose(weights[name], value, rtol=0, atol=SAME_ARITHMETIC_TOL), name
    assert reports[0]["history"][0] == pytest.approx(single["history"][0], abs=FIRST_LOSS_TOL)


def test_setn_search_on_two_nodes_equals_one_node(shared_data: Path, tmp_path: Path) -> None:
    """Against one node with two processes: `ssnas search` trains channels_last, where torch's CPU
    kernels give one process gradients up to 7 % off the contiguous-layout ones (which the global-batch
    path matches to 5e-6), so the one-process reference is the pretrain test's, with --no-channels-last."""
    data = copy_cifar_subset(shared_data, tmp_path / "cifar", per_class=20) / "train"
    common = ["search", "--strategy", "setn", "--data", str(data), "--num-images", "128", "--holdout-images", "64",
              "--epochs", "1", "--batch-size", "32", "--channels", "8", "--cells", "1", "--select-num", "6",
              "--evaluator-every", "1", "--precision", "fp32", "--no-progress", "--json"]  # fmt: skip
    out = tmp_path / "two"
    reports = _reports(two_nodes([*common, "--out", str(out)]))
    assert len(reports) == 1
    single = _reports([one_node([*common, "--out", str(tmp_path / "one")], processes=2)])[0]
    result = json.loads((out / "result.json").read_text())
    assert result["best"]["arch"] == reports[0]["best"]["arch"] == single["best"]["arch"]
    assert result["best"]["score"] == pytest.approx(single["best"]["score"], abs=SAME_ARITHMETIC_TOL)
    with (out / "candidates.csv").open() as a, (tmp_path / "one" / "candidates.csv").open() as b:
        rows, reference = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [row["arch"] for row in rows] == [row["arch"] for row in reference]
    for row, expected in zip(rows, reference):  # every column: scores, signals, table values
        assert row.keys() == expected.keys()
        for column, value in expected.items():
            if isinstance(_number_or_text(value), str):
                assert row[column] == value, column
            else:
                assert float(row[column]) == pytest.approx(float(value), rel=SAME_ARITHMETIC_TOL,
                                                           abs=SAME_ARITHMETIC_TOL), column  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())

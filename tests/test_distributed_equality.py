"""Two processes x B/2 under torchrun compute the objective of the global batch B: the same loss,
gradients and BatchNorm statistics as one process x B (gathered negatives, global BatchNorm)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

TESTS = Path(__file__).resolve().parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# fp32 throughout; the float64 all-reduced moments leave only summation-order rounding. Measured (issue 19) on a
# Xeon with avx512f + avx512_bf16 + amx_bf16 (torch 2.13 CPU, 3 runs) and on the same CPU with its kernels capped at
# AVX2 (ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2, 2 runs): reruns bit-identical; one vs two processes at most
# loss 1.3e-6, gradients 4.6e-6 (within GRAD_ATOL alone), running buffers 6.0e-8, trained weights 4.3e-7.
LOSS_TOL, GRAD_ATOL, GRAD_RTOL = 1e-5, 2e-5, 1e-4  # >= 4x the measured bound
BUFFER_ATOL, WEIGHT_ATOL = 1e-6, 1e-5  # 17x and 23x


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[Any, Any], dict[Any, Any]]:
    root = tmp_path_factory.mktemp("equality")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for launcher, name in (([sys.executable], "one"), (TORCHRUN, "two")):
        done = subprocess.run([*launcher, str(TESTS / "_ddp_equality.py"), str(root / name)], capture_output=True,
                              text=True, timeout=600, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(root / "one" / "result.pt"), torch.load(root / "two" / "result.pt")


@pytest.mark.parametrize("batchnorm", [False, True], ids=["bn-free", "batchnorm"])
@pytest.mark.parametrize("objective", ["simclr", "byol", "ensemble-byol"])
def test_loss_and_gradients_equal_one_process(runs: tuple[dict, dict], objective: str, batchnorm: bool) -> None:
    one, two = runs[0][(objective, batchnorm)], runs[1][(objective, batchnorm)]
    assert two["loss"] == pytest.approx(one["loss"], abs=LOSS_TOL)
    assert set(two["grads"]) == set(one["grads"]) and len(one["grads"]) >= 7
    for name, grad in one["grads"].items():
        assert torch.allclose(two["grads"][name], grad, atol=GRAD_ATOL, rtol=GRAD_RTOL), name
    assert set(two["buffers"]) == set(one["buffers"]) and (not batchnorm or "model.norm.running_var" in one["buffers"])
    for name, buffer in one["buffers"].items():
        assert torch.allclose(two["buffers"][name], buffer, atol=BUFFER_ATOL), name


def test_training_steps_end_with_the_same_weights(runs: tuple[dict, dict]) -> None:
    """SimCLR on a BatchNorm network, 3 steps of `train` with augmented views: the processes draw the
    global batch's views and keep their rows, so the weights match one process's."""
    one, two = runs[0]["trained"], runs[1]["trained"]
    assert set(one) == set(two)
    for name, value in one.items():
        assert torch.allclose(two[name].float(), value.float(), atol=WEIGHT_ATOL), name

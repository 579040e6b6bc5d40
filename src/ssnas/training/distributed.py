"""Data-parallel training over processes started by `torchrun` (torch.distributed).

    torchrun --standalone --nproc_per_node 2 -m ssnas.cli.main pretrain ARCH --data PATH --out runs/x

Every process builds the same network from the same seed and walks the same global batch
order; process r trains on rows r, r+W, r+2W, ... of each global batch (W processes, so a
global batch of B images is B/W per process, and the settings mean the same as in one
process). Views are drawn for the whole global batch in every process and then sharded, so
every image gets the augmentation it gets in one process.

Inside `train` the processes compute the objective of the *global* batch: SimCLR's negatives
are gathered over the processes and BatchNorm layers use global-batch statistics
(`ssnas.objectives.global_batch`), each process's loss is the mean over its rows, and after each
backward the gradients are averaged with one all-reduce. So loss and gradients equal one
process's over the same global batch up to float rounding. This is DistributedDataParallel's
arithmetic without its module wrapper: strategies call `forward_features(x, arch=...)` with a
different path each step. benchmarks/bench_ddp.py compares the two on CPU (gloo, 2 processes,
NB201 C=16 N=2, SimCLR at global batch 64, 40 steps, idle 2-core AVX2 EPYC): identical weights,
DistributedDataParallel(find_unused_parameters=True) 0.752 s per step against 0.734 s here (its
bucket overlap does not pay on two CPU processes, and its unused-parameter search costs a
graph walk per step), so the one flat all-reduce stays (`benchmarks/results/ddp_cpu_averaging.json`). Step hooks draw from
identically seeded generators, so every process samples the same path.

Objectives with one state row per training image (CSNAS's memory bank) are refused.
Only process 0 writes checkpoints, run folders and progress. Backend: gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ssnas.errors import UserError

RENDEZVOUS_TIMEOUT = timedelta(seconds=int(os.environ.get("SSNAS_DIST_TIMEOUT", "120")))


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the group: `rank` of `world_size`."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch: (B, ...) -> (B / world_size, ...)."""
        return rows[self.rank :: self.world_size]

    def average_gradients(self, parameters: Iterable[torch.Tensor]) -> None:
        """Mean of every existing gradient over the processes (one flat all-reduce)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, value: float) -> float:
        """The mean of a scalar over the processes (a NaN anywhere stays NaN)."""
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def broadcast(self, modules: Iterable[nn.Module], buffers_only: bool = False) -> None:
        """Copy process 0's buffers (and parameters unless `buffers_only`) to every process."""
        for module in modules:
            tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
            for tensor in tensors:
                dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        dist.barrier()


# --- the process group ------------------------------------------------------------------------------


def process_group() -> DataParallel | None:
    """The group this process belongs to when launched by `torchrun` with more than one
    process (initialised on first call), else None. UserError when the group cannot form."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # "cuda" = this process's GPU
        try:
            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo", timeout=RENDEZVOUS_TIMEOUT)
        except (RuntimeError, ValueError, TimeoutError) as error:
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise UserError(f"cannot join the torchrun process group at {where}: {str(error).splitlines()[0]}") from error
        atexit.register(_shut_down)
    return DataParallel(rank=dist.get_rank(), world_size=dist.get_world_size())


_EXIT_KEY = "ssnas/exited"
_EXIT_WAIT_SECONDS = 30.0


def _shut_down() -> None:
    """Leave together and tear the group down: a process that exits while the backend's threads
    still run (process 0 is still writing) aborts with 'terminate called without an active exception'.
    The last step waits on the rendezvous store until every process has torn its group down, so no
    process closes its gloo connections while a peer is still inside `destroy_process_group` (that
    race aborted a process now and then when the CPU was shared; issue 19)."""
    if dist.is_initialized():
        store = dist.distributed_c10d._get_default_store()
        world_size = dist.get_world_size()
        dist.barrier()
        dist.destroy_process_group()
        store.add(_EXIT_KEY, 1)
        deadline = time.monotonic() + _EXIT_WAIT_SECONDS
        while store.add(_EXIT_KEY, 0) < world_size and time.monotonic() < deadline:
            time.sleep(0.01)


def end_process() -> None:
    """After a successful run: leave the group together (`_shut_down`), then end this process with exit
    code 0 at once, skipping the interpreter's teardown; without a group, return (a normal exit follows).

    Under torchrun one launch in a CI run of about ten aborted in process 1 with 'terminate called
    without an active exception' after the handshake had been added (not reproduced in 45 launches
    here, two of them side by side with two busy cores). Once the group is torn down and every process
    has said so, only the interpreter's teardown is left, where gloo's threads holding work objects
    are known to abort (pytorch/pytorch#190489, #179291); it has nothing to do for a finished run."""
    if not dist.is_initialized():
        return
    _shut_down()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


def reports_errors() -> bool:
    """False in processes other than 0 of a formed group: a user error there (same arguments,
    same data) is met by process 0 too, which prints it, so the launch shows it once."""
    return not dist.is_initialized() or dist.get_rank() == 0


def is_main_process() -> bool:
    group = process_group()
    return group is None or group.is_main


__all__ = ["DataParallel", "end_process", "is_main_process", "process_group", "reports_errors"]

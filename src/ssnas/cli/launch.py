"""`ssnas launch`: torchrun for ssnas commands, with one-line errors.

    ssnas launch --nnodes 2 --node-rank 0 --nproc-per-node 2 --rdzv-backend c10d \
        --rdzv-endpoint HOST:29400 search --strategy setn --data DATA --out runs/x

Everything before the ssnas command is passed to `torch.distributed.run` (torchrun); the
command and its options run in every process as `python -m ssnas.cli.main COMMAND ...`. A
rendezvous that cannot be reached becomes one line; a process that failed has already
printed its own line, so the launcher only passes its exit code on (plain torchrun adds a
traceback of its own in both cases).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from ssnas.errors import UserError

# torch reads its C++ log level once, when it is imported: the launcher re-executes itself with
# it at FATAL and hands the user's own value (kept in _QUIET) to the processes it starts.
_CPP_LOG_LEVEL, _QUIET = "TORCH_CPP_LOG_LEVEL", "SSNAS_LAUNCH_CPP_LOG_LEVEL"


def split_arguments(args: tuple[str, ...], commands: set[str]) -> tuple[list[str], list[str]]:
    """(torchrun options, ssnas command line): split at the first argument naming an ssnas command."""
    for i, arg in enumerate(args):
        if arg in commands:
            return list(args[:i]), list(args[i:])
    raise UserError(f"ssnas launch needs an ssnas command after the torchrun options ({', '.join(sorted(commands))})")


@click.command("launch", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def launch_command(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run an ssnas command under torchrun: ssnas launch [TORCHRUN OPTIONS] COMMAND [OPTIONS]."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.run import parse_args, run

    if os.environ.get(_QUIET) is None:  # once more, with torch's C++ log (connection retries) silenced
        env = {**os.environ, _QUIET: os.environ.get(_CPP_LOG_LEVEL, ""), _CPP_LOG_LEVEL: "FATAL"}
        os.execve(sys.executable, [sys.executable, "-m", "ssnas.cli.main", "launch", *args], env)
    original = os.environ.pop(_QUIET)  # the processes started below log as the user asked
    if original:
        os.environ[_CPP_LOG_LEVEL] = original
    else:
        os.environ.pop(_CPP_LOG_LEVEL, None)
    assert ctx.parent is not None and isinstance(ctx.parent.command, click.Group)
    commands = set(ctx.parent.command.list_commands(ctx.parent)) - {"launch"}  # the names only: imported lazily
    options, command = split_arguments(args, commands)
    parsed: Any = parse_args([*options, "-m", "ssnas.cli.main", *command])
    for name in ("torch.distributed.elastic", "torch.distributed.run"):  # its failure reports and notes
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(parsed)
    except ChildFailedError as error:  # each process printed its own line
        codes = [failure.exitcode for failure in error.failures.values()]
        sys.exit(max((c for c in codes if c > 0), default=1))
    except RendezvousError as error:
        cause = str(error.__cause__ or error)
        detail = cause.splitlines()[0] if cause else "no other node joined within the join timeout"
        raise UserError(
            f"cannot join the rendezvous at {parsed.rdzv_endpoint or 'localhost'} ({type(error).__name__}: {detail}); "
            "check the address, that node 0 runs, and the same --nnodes everywhere"
        ) from error

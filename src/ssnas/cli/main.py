"""`ssnas` command line: parse options, call the library, print. No search logic here."""

from __future__ import annotations

import sys
from typing import Any

import click

from ssnas import __version__
from ssnas.cli import bench, launch, pretrain, rank, search, spaces, worker
from ssnas.cli import train as train_cli
from ssnas.cli._common import fail
from ssnas.errors import UserError
from ssnas.training.distributed import reports_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ssnas")
def cli() -> None:
    """Label-free neural architecture search: find an architecture without labelling anything."""


cli.add_command(spaces.spaces_command)
cli.add_command(bench.bench_group)
cli.add_command(rank.rank_command)
cli.add_command(search.search_command)
cli.add_command(train_cli.train_command)
cli.add_command(train_cli.export_command)
cli.add_command(pretrain.pretrain_command)
cli.add_command(pretrain.probe_command)
cli.add_command(worker.worker_command)
cli.add_command(launch.launch_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user errors become one line on stderr and exit code 1 (2 for usage)."""
    try:
        return cli.main(args=argv, prog_name="ssnas", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        fail("aborted", code=130)
    except click.UsageError as error:
        hint = f" (see 'ssnas {error.ctx.command_path.partition(' ')[2]} --help')" if error.ctx else ""
        fail(f"{error.format_message()}{hint}".replace("  ", " "), code=2)
    except click.ClickException as error:
        fail(error.format_message())
    except UserError as error:
        if not reports_errors():  # under torchrun, process 0 reports the error all processes met
            sys.exit(1)
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; the run folder keeps its last checkpoint", code=130)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        fail(f"{error.strerror}: {error.filename}")


if __name__ == "__main__":
    main()

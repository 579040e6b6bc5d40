"""`ssnas` command line: parse options, call the library, print. No search logic here."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ssnas.version import __version__
from ssnas.errors import UserError

# name -> ("module:attribute", one-line help). A command's module (and torch, scipy, ...) is
# imported only when that command runs, so `ssnas --help` answers at once.
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("ssnas.cli.bench:bench_group", "Query NAS-Bench-201 ground truth and score rankers against it."),
    "compare": ("ssnas.cli.report:compare_command", "Put search runs side by side in one compare.html."),
    "fit": ("ssnas.cli.fit:fit_command", "Unlabeled folder + a few labels -> searched, pretrained, fine-tuned, exported model."),
    "finetune": ("ssnas.cli.train:finetune_command", "Fine-tune a pretrained network with the labels there are."),
    "export": ("ssnas.cli.train:export_command", "Export the network of ARCH (eval mode) to TorchScript or ONNX."),
    "launch": ("ssnas.cli.launch:launch_command", "Run an ssnas command under torchrun, over processes or machines."),
    "pretrain": ("ssnas.cli.pretrain:pretrain_command", "Pretrain the network of ARCH with a self-supervised objective."),
    "probe": ("ssnas.cli.pretrain:probe_command", "Top-1 of frozen-feature probes of a pretrained network."),
    "rank": ("ssnas.cli.rank:rank_command", "Score architectures without labels and compare with ground truth."),
    "report": ("ssnas.cli.report:report_command", "Rebuild report.html of a search from its run folder."),
    "search": ("ssnas.cli.search:search_command", "Search an architecture without labels and write a run folder."),
    "spaces": ("ssnas.cli.spaces:spaces_command", "List the search spaces: decisions, size and optional abilities."),
    "train": ("ssnas.cli.train:train_command", "Train ARCH from scratch with labels and report its test accuracy."),
    "worker": ("ssnas.cli.worker:worker_command", "Work on the trials of a shared study until it is complete."),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use (timm-style registry of names)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ssnas")
def cli() -> None:
    """Label-free neural architecture search: find an architecture without labelling anything."""


# Characters that end a line on a terminal (str.splitlines), shown escaped so an error stays one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, then exit with `code`."""
    click.echo(f"ssnas: error: {message.strip().translate(_LINE_BREAKS)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user errors become one line on stderr and exit code 1 (2 for usage)."""
    try:
        result = cli.main(args=argv, prog_name="ssnas", standalone_mode=False)
        if result in (None, 0) and "ssnas.training.distributed" in sys.modules:  # torchrun: leave the group, end
            sys.modules["ssnas.training.distributed"].end_process()
        return result
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
        from ssnas.training.distributed import reports_errors

        if not reports_errors():  # under torchrun, process 0 reports the error all processes met
            sys.exit(1)
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; the run folder keeps its last checkpoint", code=130)
    except OSError as error:  # the machine refused: missing file, name too long, symlink loop, disk full
        where = f": {error.filename}" if error.filename is not None else ""
        fail(f"{error.strerror or error}{where}".splitlines()[0])


if __name__ == "__main__":
    main()

"""Shared CLI plumbing: one-line errors, --json output, config files."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from ssnas.errors import UserError
from ssnas.spaces import SPACES, load_space_module
from ssnas.training.precision import PRECISIONS

F = TypeVar("F", bound=Callable[..., Any])


def emit(payload: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], None]) -> None:
    """Print one JSON object on stdout with --json, else the human rendering."""
    if as_json:
        click.echo(json.dumps(payload, indent=None, sort_keys=False, default=_json_default))
    else:
        render(payload)


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()  # numpy / torch scalars
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


class FiniteFloat(click.ParamType):
    """A float that is finite and above `low` (or at least `low` with `inclusive`): NaN and inf are refused."""

    name = "float"

    def __init__(self, low: float = 0.0, inclusive: bool = False) -> None:
        self.low, self.inclusive = low, inclusive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or number < self.low or (number == self.low and not self.inclusive):
            bound = f">= {self.low:g}" if self.inclusive else f"> {self.low:g}"
            self.fail(f"{value!r} must be a finite number {bound}", param, ctx)
        return number


class NonEmpty(click.ParamType):
    """A string that is not empty or blank (an empty --out or --data is a typo, not a choice)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not str(value).strip():
            self.fail("must not be empty", param, ctx)
        return str(value)


POSITIVE = click.IntRange(min=1)  # counts: images, epochs, candidates, trials
BATCH = click.IntRange(min=2)  # BN needs two images
POSITIVE_FLOAT = FiniteFloat(0.0)  # learning rates
NON_NEGATIVE_FLOAT = FiniteFloat(0.0, inclusive=True)  # weight decay
TEXT = NonEmpty()

PRECISION_HELP = ("auto = bf16 where it is native (CUDA with bf16; a CPU with AVX512-BF16 or AMX), "
                  "fp16 AMP on older GPUs, fp32 otherwise; the resolved one goes to config.yaml.")
precision_option = click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                                help=PRECISION_HELP)  # fmt: skip


def registry_help(text: str, names: list[str]) -> str:
    """`text` followed by the registered names (so help never lists them by hand)."""
    return f"{text} One of: {', '.join(names)}."


def load_config_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of option names (dashes or underscores) to values."""
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _apply_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    config = load_config_file(value)
    known = {p.name for p in ctx.command.params if p.name and p.name not in {"config", "as_json"}}
    unknown = sorted(set(config) - known)
    if unknown:
        raise UserError(
            f"unknown key(s) in {value}: {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    ctx.default_map = {**(ctx.default_map or {}), **config}
    return value


def config_option(command: F) -> F:
    """`--config FILE`: option defaults from a YAML file; command-line flags still win."""
    return click.option(
        "--config",
        type=click.Path(path_type=Path),
        callback=_apply_config,
        is_eager=True,
        expose_value=False,
        help="YAML file of option values (keys are option names); flags given on the command line win.",
    )(command)


class SpaceName(click.ParamType):
    """A registered search space, looked up when the option is read: after `--space-module`
    (an eager option) has registered its file's spaces, with the plugins' names in --help."""

    name = "space"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(SPACES.names()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            SPACES.get(str(value))
        except UserError as error:
            self.fail(str(error), param, ctx)
        return str(value)


SPACE = SpaceName()


def _load_space_module(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    load_space_module(value)  # UserError: one line, exit 1
    return str(Path(value).expanduser().resolve())  # config.yaml finds it again from any folder


def space_module_option(record: bool = False) -> Callable[[F], F]:
    """`--space-module FILE.py`: import a file that registers search spaces, before `--space` is read.

    With `record`, the command gets the file's absolute path as `space_module` (for config.yaml).
    """
    return click.option(
        "--space-module", "space_module", type=click.Path(dir_okay=False), default=None, metavar="FILE.py",
        is_eager=True, expose_value=record, callback=_load_space_module,
        help='Python file that registers a search space with @SPACES.register("name") (README: your own '
             "search space); installed plugins need no flag.",
    )  # fmt: skip

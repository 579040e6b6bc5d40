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
from ssnas.paths import expand_user
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
# Commands whose training was not measured to keep its quality in bf16 (`BF16_KEEPS_QUALITY = False`).
fp32_auto_precision_option = click.option(
    "--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
    help="auto = fp32 here (bf16 was not measured to keep what this command trains; --precision bf16 uses it "
         "where it is native); the resolved one goes to config.yaml.",
)  # fmt: skip
search_precision_option = click.option(
    "--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
    help=PRECISION_HELP[:-1] + "; strategies that train (setn, two-stage, tpe, random, bossnas) take fp32 under "
         "auto, bf16 not being measured to keep their rating.",
)  # fmt: skip

skip_corrupt_option = click.option(
    "--skip-corrupt", "skip_corrupt", is_flag=True,
    help="Leave image files of --data that cannot be decoded out instead of stopping at the first (how many: "
         "skipped_images in the output, and the run's log).",
)  # fmt: skip


def key_values(values: tuple[str, ...], option: str, example: str) -> dict[str, Any]:
    """`("C=8", "N=1")` -> `{"C": 8, "N": 1}`: a repeatable KEY=VALUE option, values read as YAML scalars."""
    args: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} {item!r} must look like KEY=VALUE (e.g. {example})")
        try:
            args[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"{option} {item!r}: cannot read the value {value!r}") from None
    return args


def out_help(default: str, what: str = "Run folder") -> str:
    """--out's help: what it is and the new folder a run gets without it."""
    return f"{what} [a new one each run: runs/{default}-YYYYmmdd-HHMMSS]."


def registry_help(text: str, names: list[str]) -> str:
    """`text` followed by the registered names (so help never lists them by hand)."""
    return f"{text} One of: {', '.join(names)}."


def load_config_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of option names (dashes or underscores) to values."""
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"config file {path} is not UTF-8 text (byte {error.start} cannot be decoded)") from None
    except RecursionError:
        raise UserError(f"config file {path} is nested too deeply") from None
    except (yaml.YAMLError, ValueError) as error:  # ValueError: e.g. an integer of over 4,300 digits
        raise UserError(f"config file {path} is not valid YAML: {_first_line(error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


_SCALARS = (str, int, float)  # YAML null, booleans (ints), numbers and text; not lists, mappings or dates


def _apply_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    config = load_config_file(value)
    known = {p.name for p in ctx.command.params if p.name and p.name not in {"config", "as_json"}}
    unknown = sorted(set(config) - known)
    if unknown:
        raise UserError(
            f"unknown key(s) in {value}: {', '.join(map(_key_shown, unknown))}; valid keys: {', '.join(sorted(known))}"
        )
    params = {p.name: p for p in ctx.command.params if p.name in config}
    for name, given in config.items():
        if getattr(params[name], "multiple", False) and isinstance(given, _SCALARS):
            config[name] = given = [given]  # `rating: meco` for `rating: [meco]`
        _check_config_value(ctx, params[name], given, value)
    ctx.default_map = {**(ctx.default_map or {}), **config}
    return value


def _check_config_value(ctx: click.Context, param: click.Parameter, given: Any, path: Path) -> None:
    """UserError unless `given` has the shape `param` takes (one scalar, or a list of them for a
    repeatable option) and converts without a crash; a value click refuses is left for click to report."""
    many = bool(getattr(param, "multiple", False)) or param.nargs != 1
    items = given if many and isinstance(given, list) else [given]
    if not all(item is None or isinstance(item, _SCALARS) for item in items):
        takes = "a list of values" if many else "one value"
        raise UserError(f"{path}: {param.name} takes {takes}, not {_shown(given)}")
    if any(isinstance(item, str) and "\x00" in item for item in items):  # no path or name holds one
        raise UserError(f"{path}: {param.name}: {_shown(given)} holds a NUL character")
    try:
        param.type_cast_value(ctx, given)
    except (click.BadParameter, UserError):
        pass  # reported by click with the option's name when the command's options are read
    except (TypeError, ValueError, ArithmeticError, AttributeError) as error:  # int(.inf); a number for a flag
        raise UserError(f"{path}: {param.name}: {_shown(given)} is not a valid value ({_first_line(error)})") from None


def _key_shown(key: str) -> str:
    return _shown(key) if not key.isprintable() or len(key) > 60 else key


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
    value = str(value)  # a --config file may give a number
    load_space_module(value)  # UserError: one line, exit 1
    return str(expand_user(value).resolve())  # config.yaml finds it again from any folder


def space_module_option(record: bool = False) -> Callable[[F], F]:
    """`--space-module FILE.py`: import a file that registers search spaces, before `--space` is read.

    With `record`, the command gets the file's absolute path as `space_module` (for config.yaml).
    """
    return click.option(
        "--space-module", "space_module", type=click.Path(dir_okay=False), default=None, metavar="FILE.py",
        is_eager=True, expose_value=record, callback=_load_space_module,
        help='Python file that registers a search space with @SPACES.register("name") (docs: tutorials, '
             "your own search space); installed plugins need no flag.",
    )  # fmt: skip

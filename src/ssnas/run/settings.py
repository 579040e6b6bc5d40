"""What one search runs with: the shared run settings beside the chosen strategy's own.

Flags and `--config` keys arrive as one mapping of option names (`search_config`). Each name is
a run setting (`RunSettings`) or an option of the strategies that use it (each strategy's
settings class, beside its code, `ssnas.strategies.settings`); one the chosen strategy does not use on the space is refused in one
line naming what it takes, before any work. `resolve` fills what was not given; `config_dict`
is `config.yaml`: exactly what ran, under option names, so `ssnas search --config
RUN/config.yaml` reads it back unchanged.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ssnas.errors import UserError
from ssnas.paths import DATA_ENV
from ssnas.run.presets import PRESETS, default_strategy
from ssnas.strategies.settings import SIZED_SPACES, STRATEGY_SETTINGS, StrategySettings, flag, renamed
from ssnas.runfolder import out_or_new
from ssnas.spaces import SPACES, load_space_module
from ssnas.strategies import Strategy
from ssnas.studies import masked_url
from ssnas.training.precision import resolve_precision_name


@dataclass(frozen=True)
class RunSettings:
    """Settings of every search, whatever the strategy; None = found when the run starts."""

    space: str = "nb201"
    space_module: str | None = None  # Python file registering `space` (absolute; `ssnas.spaces.load_space_module`)
    strategy: str | None = None  # None = the space's default (SPACE_STRATEGIES)
    data: str | None = None  # image folder, or cifar10/cifar100; default $SSNAS_DATA, else cifar10
    skip_corrupt: bool = False  # leave unreadable image files of `data` out (counted: result.json skipped_images)
    preset: str = "quick"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    out: str | None = None  # run folder; None: a new one under runs/ (`search_config` names it)
    resume: bool = False
    progress: bool = True
    num_images: int | None = None  # unlabeled training images; their share of the folder (`fit_data`)
    holdout_images: int | None = None  # unlabeled held-out images for rating / evaluator steps
    table: str | None = None  # ground-truth CSV for result.json (default: the space's own, for CIFAR-10)
    max_flops: float | None = None  # budget: MFLOPs (millions of multiply-accumulates per 32x32 image)
    max_params: float | None = None  # budget: millions of parameters
    max_latency_ms: float | None = None  # budget: ms per image, batch 1, fp32, measured here

    @property
    def out_dir(self) -> Path:
        """The run folder (named by `search_config` when not given)."""
        assert self.out is not None, "search_config names the run folder"
        return Path(self.out)


RUN_OPTIONS = tuple(f.name for f in fields(RunSettings))
# How this command runs, not what the search computes: never in config.yaml.
INVOCATION = ("resume", "progress")
# Absent from config.yaml when not given: no budget, the space's own table, a built-in or installed space.
OPTIONAL = ("table", "max_flops", "max_params", "max_latency_ms", "space_module")
# Settings a resumed run may change: the device, how the run folder is spelled, and --skip-corrupt (a run
# that read its folder without it read no unreadable file; one that needed it is refused its data without it).
RESUMABLE = ("device", "out", "skip_corrupt")


@dataclass(frozen=True)
class SearchConfig:
    """One search: `run` (shared) and `strategy`, the settings of the strategy `run.strategy` names."""

    run: RunSettings
    strategy: StrategySettings

    def create_strategy(self) -> Strategy:
        """The strategy, built from its settings (resolved: `resolve`)."""
        assert self.run.strategy is not None, "search_config names the strategy"
        return self.strategy.create(self.run.strategy, self.run.space, self.run.preset)


def search_config(**options: Any) -> SearchConfig:
    """The settings of one search from option names (flags, `--config` keys); None = not given.

    `space_module` (a Python file registering the space) is loaded first and kept as an absolute
    path, so config.yaml finds the space again. Raises UserError, before any work, for an unknown
    space, preset or strategy, or for an option the chosen strategy does not use on the space (one
    line naming the options it takes). Without `out` the run gets a new folder under runs/.
    """
    given = renamed({name: value for name, value in options.items() if value is not None})
    run = RunSettings(**{name: given.pop(name) for name in RUN_OPTIONS if name in given})
    if run.space_module is not None:  # config.yaml of a run on a space from a file: load it again
        load_space_module(run.space_module)
        run = replace(run, space_module=str(Path(run.space_module).expanduser().resolve()))
    SPACES.get(run.space)  # UserError naming the spaces there are
    if run.preset not in PRESETS:
        raise UserError(f"unknown preset {run.preset!r}; choose from: {', '.join(PRESETS)}")
    run = replace(run, strategy=run.strategy or default_strategy(run.space))
    if run.strategy not in STRATEGY_SETTINGS:
        raise UserError(f"unknown strategy {run.strategy!r}; choose from: {', '.join(STRATEGY_SETTINGS)}")
    strategy_options = {f.name for kind in STRATEGY_SETTINGS.values() for f in fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(given) - strategy_options)
    if unknown:
        valid = ", ".join(sorted({*RUN_OPTIONS, *strategy_options}))
        raise UserError(f"unknown setting(s) {', '.join(unknown)}; valid: {valid}")
    kind = STRATEGY_SETTINGS[run.strategy]
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    strategy = kind(**{name: value for name, value in given.items() if name in known})
    _refuse_unused(run, strategy, list(given))
    out = out_or_new(run.out, run.resume, "search", run.space, f"s{run.seed}")  # no --out: a new folder
    return SearchConfig(replace(run, out=str(out)), strategy)


def _refuse_unused(run: RunSettings, strategy: StrategySettings, given: list[str]) -> None:
    used = strategy.options(run.space)
    unused = [name for name in given if name not in used]
    if not unused:
        return
    on_other_spaces = {name for space in SIZED_SPACES for name in strategy.options(space)}
    where = f" on space {run.space!r}" if any(name in on_other_spaces for name in unused) else ""
    mode = f" with {strategy.mode()}" if strategy.mode() else ""  # tpe / random: the options depend on it
    raise UserError(f"strategy {run.strategy!r}{mode} does not use {', '.join(map(flag, unused))}{where}; "
                    f"it takes: {', '.join(map(flag, used))}")  # fmt: skip


def resolve(config: SearchConfig) -> SearchConfig:
    """Every setting the run uses filled: the strategy's (preset, method, space defaults), the
    data ($SSNAS_DATA, else cifar10) and the precision the device runs. The image counts are
    fixed once the data is loaded (`ssnas.run.task.fit_data`)."""
    run = config.run
    data = run.data or os.environ.get(DATA_ENV) or "cifar10"
    precision = resolve_precision_name(run.precision, run.device, config.strategy.bf16_keeps_quality)
    run = replace(run, data=data, precision=precision)  # config.yaml: what ran
    return SearchConfig(run, config.strategy.resolve(run.space, run.preset))


def objective_of(config: SearchConfig) -> str | None:
    """The training objective the strategy uses, None for strategies that use none."""
    return getattr(config.strategy, "objective", None)


def config_dict(config: SearchConfig) -> dict[str, Any]:
    """config.yaml: the run settings, then every option the strategy used, under option names.

    No key the strategy did not use, no null for one it used (a storage not given, the run
    folder's journal, is absent), nothing about how this command runs (resume, progress), no
    password: a storage URL is written masked (`ssnas.studies.masked_url`), so a resumed run is
    matched on its user, host and database, and `--config` of this file needs the password again.
    """
    run = {name: value for name, value in asdict(config.run).items()
           if name not in INVOCATION and not (name in OPTIONAL and value is None)}  # fmt: skip
    strategy = {name: getattr(config.strategy, name) for name in config.strategy.options(config.run.space)}
    return {**run, **{name: _written(name, v) for name, v in strategy.items() if v is not None}}


def _written(name: str, value: Any) -> Any:
    """A strategy setting as config.yaml holds it: lists, not tuples; a storage URL without its password."""
    if isinstance(value, tuple):
        return list(value)
    return masked_url(value) if name == "storage" else value


__all__ = [
    "RESUMABLE", "RUN_OPTIONS", "RunSettings", "SearchConfig", "config_dict", "objective_of", "resolve",
    "search_config",
]

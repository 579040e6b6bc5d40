"""What every strategy's settings share: the protocol, the image floor, the training options and presets.

Each strategy keeps its own settings beside its code (`EvolutionSettings` in `evolution.py`,
`SetnSettings` in `setn.py`, ...): one small frozen dataclass whose field names are option names
(`--rating-batch-size` is `rating_batch_size`; None = not given), registered under the strategy's
name with `@settings_for("name")`. Every settings class answers:

* `options(space)`: the options it uses on `space` (`ssnas.run.settings` refuses any other);
* `resolve(space, preset)`: every used option filled (the preset, then the method's own scale,
  then the space's), unused ones left None: the one place a default is filled;
* `network(space)`: the size of the networks built per architecture (`create_space` arguments);
* `create(name, space, preset)`: the strategy;
* `scored_by()`: what scores a candidate, in words, for `search.log`;
* `image_floor(space)` and `shares(preset)`: the fewest training and held-out images it runs on,
  and the shares of the folder it takes above them (`ssnas.run.task.fit_data`);
* `views(space)`: a view recipe other than the objective's own (None);
* `check_launch(strategy)`: refusals before any data is read (a storage that cannot be reached);
* `for_rating()`: the settings that rate a given list of architectures (`ssnas rank --strategy`).

`Settings` gives the usual answer to the last five; a strategy overrides what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, TypeVar

from ssnas.data.split import Share
from ssnas.errors import UserError
from ssnas.strategies.base import Strategy
from ssnas.strategies.supernet_rating import DEFAULT_SIGNALS as SETN_SIGNALS

S = TypeVar("S")

PRESETS: dict[str, dict[str, Any]] = {
    # About 10-15 minutes on a 2-core CPU.
    "quick": dict(epochs=5, batch_size=128, lr=0.1, optimizer="sgd",
                  weight_decay=5e-4, channels=16, cells=2, select_num=100, evaluator_every=2,
                  signals=SETN_SIGNALS, trials=20),
    # The papers' settings, for a GPU: SETN's NB201 script (AutoDL-Projects), CSNAS's trial count.
    "paper": dict(epochs=250, batch_size=64, lr=0.025,
                  optimizer="sgd", weight_decay=5e-4, channels=16, cells=5, select_num=100,
                  evaluator_every=1, signals=SETN_SIGNALS, trials=120),
}  # fmt: skip

# Training and held-out image counts as shares of the folder (`ssnas.data.split`), unless given:
# quick = CIFAR-10's 5,000 + 1,024, and 80 % / 20 % of a smaller folder; paper = SETN's halves of
# the training set. A strategy's floor (`image_floor`) applies below them; tpe / random take
# CSNAS's own shares (`OptunaSettings.shares`).
PRESET_SPLITS: dict[str, tuple[Share, Share]] = {
    "quick": (Share(0.8, 0, 5000), Share(0.2, 0, 1024)),
    "paper": (Share(0.5, 0, 25000), Share(0.5, 0, 25000)),
}

# The objective of strategies that train with one (setn, tpe / random proxy trials).
DEFAULT_OBJECTIVE = "simclr"

# The fewest training and held-out images of the strategies that train a supernet (setn, bossnas).
SUPERNET_FLOOR = (512, 256)

# Networks a strategy builds per architecture (evolution's rating, tpe / random trials), by
# default the space's full size: NB201's benchmark network (C=16, N=5) and CSNAS's DARTS proxy
# network (C=32, 8 cells in all, CSNAS's search/model_generator.py). `cells` counts cells per stage
# on nb201 and all cells on darts. Where the full size replaces the preset's: darts always; nb201
# for evolution.
FULL_NETWORK: dict[str, dict[str, int]] = {"nb201": dict(channels=16, cells=5), "darts": dict(channels=32, cells=8)}

FINISH_SECONDS = 6.0  # of a time budget, kept for writing result.json, candidates.csv and report.html

TRAINING = ("epochs", "batch_size", "lr", "optimizer", "weight_decay")
NETWORK = ("channels", "cells")
STANDALONE_SIZED = ("nb201", "darts")  # spaces whose per-architecture networks take channels / cells
SUPERNET_SIZED = ("nb201",)  # spaces whose supernet takes them (setn, bossnas)
SIZED_SPACES = STANDALONE_SIZED  # every space where some strategy takes channels / cells


@dataclass(frozen=True)
class ImageFloor:
    """The fewest training and held-out images a strategy runs on."""

    training: int
    holdout: int

    @property
    def total(self) -> int:
        return self.training + self.holdout

    def within(self, train: Share, holdout: Share) -> tuple[Share, Share]:
        """The shares with this floor (a cap below the floor is raised to it)."""
        return _floored(train, self.training), _floored(holdout, self.holdout)

    def describe(self) -> str:
        return f"{self.training:,} training + {self.holdout:,} held-out"


class StrategySettings(Protocol):
    # False where what the strategy trains decides its rating and bf16 was not measured to keep
    # it: `--precision auto` then means fp32 (`ssnas.training.precision`)
    bf16_keeps_quality: ClassVar[bool]

    def options(self, space: str) -> tuple[str, ...]: ...

    def resolve(self, space: str, preset: str) -> StrategySettings: ...

    def network(self, space: str) -> dict[str, int]: ...

    def create(self, name: str, space: str, preset: str) -> Strategy: ...

    def scored_by(self) -> str: ...

    def image_floor(self, space: str) -> ImageFloor: ...

    def shares(self, preset: str) -> tuple[Share, Share]: ...

    def views(self, space: str) -> str | None: ...

    def check_launch(self, strategy: Strategy) -> None: ...

    def for_rating(self) -> StrategySettings: ...

    def mode(self) -> str: ...


@dataclass(frozen=True)
class Settings:
    """The usual answers of a strategy's settings; subclasses add their options and override."""

    def network(self, space: str) -> dict[str, int]:
        return {}  # the space's own size

    def shares(self, preset: str) -> tuple[Share, Share]:
        return PRESET_SPLITS[preset]

    def views(self, space: str) -> str | None:
        return None  # the objective's own

    def check_launch(self, strategy: Strategy) -> None:
        return None

    def for_rating(self: S) -> S:
        return self

    def mode(self) -> str:
        """A setting that decides which options apply, in words for a refusal ("" where none does)."""
        return ""


@dataclass(frozen=True)
class Training(Settings):
    """Training settings of the strategies that train; None = the preset's."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None


STRATEGY_SETTINGS: dict[str, type[StrategySettings]] = {}


def settings_for(*names: str) -> Callable[[type[S]], type[S]]:
    """Register a settings class as the settings of the strategies `names` (`STRATEGY_SETTINGS`)."""

    def register(kind: type[S]) -> type[S]:
        for name in names:
            if name in STRATEGY_SETTINGS:
                raise ValueError(f"strategy {name!r} already has settings")
            STRATEGY_SETTINGS[name] = kind  # type: ignore[assignment]
        return kind

    return register


# Options under an older name, still read (from the Python API, --config and the config.yaml of a
# run to --resume): old name -> name.
RENAMED = {"rating": "signals"}  # SETN's signals: `rating` read like `ranker`, which it is not


def renamed(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` under today's names; UserError when an option is given under both names."""
    both = [old for old, new in RENAMED.items() if old in options and new in options]
    if both:
        raise UserError(f"give {flag(RENAMED[both[0]])} only (--{both[0]} is its old name)")
    return {RENAMED.get(name, name): value for name, value in options.items()}


def flag(option: str) -> str:
    """The command-line spelling of an option name: rating_batch_size -> --rating-batch-size."""
    return "--" + option.replace("_", "-")


def sized(space: str, spaces: Iterable[str]) -> tuple[str, ...]:
    """The network options (channels, cells) where `space` is one of `spaces`."""
    return NETWORK if space in spaces else ()


def fill(settings: S, used: Iterable[str], defaults: Mapping[str, Any]) -> S:
    """`settings` with every used option that was not given taken from `defaults` (where it has one)."""
    missing = {name: defaults[name] for name in used if getattr(settings, name) is None and name in defaults}
    return replace(settings, **missing)  # type: ignore[type-var]


def given(value: S | None) -> S:
    """A resolved setting (never None once `resolve` ran)."""
    assert value is not None, "settings are resolved before a strategy is built"
    return value


def named_network(network: Mapping[str, int]) -> dict[str, int]:
    """`ssnas.rating` network overrides ({"C": .., "N": ..}) under option names."""
    names = {"C": "channels", "N": "cells"}
    return {names[k]: v for k, v in network.items() if k in names}


def standalone_network(space: str, channels: int | None, cells: int | None) -> dict[str, int]:
    """`create_space` arguments sizing the networks built per architecture."""
    if space == "nb201":
        return {"C": given(channels), "N": given(cells)}
    if space == "darts":
        return {"C": given(channels), "layers": given(cells)}
    return {}


def supernet_size(channels: int | None, cells: int | None) -> dict[str, int]:
    """NB201 supernet width C and cells per stage N, where set."""
    return {k: v for k, v in (("C", channels), ("N", cells)) if v is not None}


def _floored(share: Share, floor: int) -> Share:
    return replace(share, floor=floor, cap=None if share.cap is None else max(share.cap, floor))


__all__ = [
    "DEFAULT_OBJECTIVE", "FINISH_SECONDS", "FULL_NETWORK", "NETWORK", "PRESETS", "PRESET_SPLITS", "RENAMED", "SIZED_SPACES",
    "STANDALONE_SIZED", "STRATEGY_SETTINGS", "SUPERNET_FLOOR", "SUPERNET_SIZED", "TRAINING", "ImageFloor", "Settings",
    "StrategySettings", "Training", "fill", "flag", "given", "named_network", "renamed", "settings_for", "sized",
    "standalone_network", "supernet_size",
]

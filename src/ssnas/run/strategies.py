"""Each strategy's own settings: what it takes, what it defaults to, and the strategy it builds.

One small frozen dataclass per strategy (tpe and random share one). Field names are option
names (`--rating-batch-size` is `rating_batch_size`); None = not given. Every class answers:

* `options(space)`: the options it uses on `space` (the refusal of any other is `ssnas.run.settings`);
* `resolve(space, preset)`: every used option filled (preset, then the method's own scale, then
  the space's), unused ones left None;
* `network(space)`: the size of the networks built per architecture (`create_space` arguments);
* `create(name, space, preset)`: the strategy, built with its own config class (EvolutionConfig,
  SetnConfig, StudyConfig + ProxyConfig, BossConfig);
* `scored_by()`: what scores a candidate, in words, for `search.log`;
* `image_floor(space)`: the fewest training and held-out images it runs on (resolved settings);
  the preset's shares of the folder apply above it (`ssnas.run.task.fit_data`).

Training settings belong to the strategies that train (setn, tpe / random proxy trials,
bossnas); channels / cells to the spaces where the strategy sizes networks (nb201 and darts
for standalone networks, nb201's supernet for setn and bossnas).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, TypeVar

from ssnas.errors import UserError
from ssnas.data.split import Share
from ssnas.judging import JudgeConfig
from ssnas.judging.judge import BF16_KEEPS_QUALITY as JUDGE_BF16_KEEPS_QUALITY
from ssnas.judging.defaults import judge_defaults
from ssnas.rating.defaults import search_defaults
from ssnas.run.presets import (
    BOSSNAS_QUICK_HEADS, CSNAS_EPOCHS, CSNAS_HOLDOUT, DEFAULT_OBJECTIVE, DEFAULT_TRIAL_OBJECTIVE, EVOLUTION_PLANS, FULL_NETWORK,
    PRESETS, SUPERNET_FLOOR,
)  # fmt: skip
from ssnas.strategies import Strategy
from ssnas.strategies import bossnas, proxy, setn
from ssnas.strategies.bossnas import BossConfig, BossNAS
from ssnas.strategies.evolution import FINISH_SECONDS, Evolution, EvolutionConfig
from ssnas.strategies.proxy import ProxyConfig
from ssnas.strategies.setn import SETN, SetnConfig
from ssnas.strategies.supernet_rating import RatingConfig
from ssnas.strategies.tpe import OptunaSearch
from ssnas.strategies.two_stage import TwoStage, TwoStageConfig
from ssnas.studies import StudyConfig

TRAINING = ("epochs", "batch_size", "lr", "optimizer", "weight_decay")
NETWORK = ("channels", "cells")
STANDALONE_SIZED = ("nb201", "darts")  # spaces whose per-architecture networks take channels / cells
SUPERNET_SIZED = ("nb201",)  # spaces whose supernet takes them (setn, bossnas)
SIZED_SPACES = STANDALONE_SIZED  # every space where some strategy takes channels / cells

S = TypeVar("S")


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


@dataclass(frozen=True)
class Training:
    """Training settings of the strategies that train; None = the preset's."""


    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None


@dataclass(frozen=True)
class EvolutionSettings:
    """Aging evolution over a label-free rating at initialisation (`EvolutionConfig`); trains nothing.

    ranker: ranker expression ("az-nas-ssl", "meco+synflow", ...) [the space's search default].
    ratings: architectures rated; with time_budget, at most this many [100 without a time budget].
    time_budget: minutes the whole run may take; the ratings that fit are planned at the start
        [`EVOLUTION_PLANS` of the space unless --ratings is given; elsewhere none].
    islands: independent evolutions run in turn and pooled [the space's plan under a time budget, else 1].
    final_shortlist: the best this many of all rated are rated again under two more seeds and the
        pick is their best mean rank [the space's plan under a time budget, else 0: off].
    rating_batch_size: held-out images per rated network [the space's search default].
    channels / cells: the rated network's size [nb201: C=16, N=5; darts: 32, 8].
    """

    bf16_keeps_quality: ClassVar[bool] = True  # trains nothing

    ranker: str | None = None
    ratings: int | None = None
    time_budget: float | None = None
    islands: int | None = None
    final_shortlist: int | None = None
    population: int | None = None
    rating_batch_size: int | None = None
    channels: int | None = None
    cells: int | None = None

    def options(self, space: str) -> tuple[str, ...]:
        return ("ranker", "ratings", "time_budget", "islands", "final_shortlist", "population", "rating_batch_size",
                *_sized(space, STANDALONE_SIZED))  # fmt: skip

    def resolve(self, space: str, preset: str) -> EvolutionSettings:
        return self.resolved(space, EVOLUTION_PLANS.get(space))

    def resolved(self, space: str, plan: tuple[float, int, int] | None) -> EvolutionSettings:
        """Every used option filled; `plan` (minutes, islands, final shortlist) applies when neither a time budget nor
        a number of ratings was given (None: a fixed number of ratings)."""
        rating, base = search_defaults(space), EvolutionConfig()
        network = {**FULL_NETWORK.get(space, {}), **_named_network(rating.network)}
        defaults = dict(ranker=rating.ranker, rating_batch_size=rating.batch_size, islands=base.islands,
                        final_shortlist=base.final_shortlist, population=base.population, **network)  # fmt: skip
        minutes, islands, final = plan or (None, base.islands, base.final_shortlist)
        budget = self.time_budget if self.time_budget is not None or self.ratings is not None else minutes
        if budget is None:  # a time budget plans the ratings itself; --ratings caps them
            defaults["ratings"] = base.ratings
        else:
            defaults.update(time_budget=budget, islands=islands, final_shortlist=final)
        return _fill(self, self.options(space), defaults)

    def network(self, space: str) -> dict[str, int]:
        return _standalone_network(space, self.channels, self.cells)

    def create(self, name: str, space: str, preset: str) -> Strategy:
        return Evolution(self.evolution_config())

    def evolution_config(self) -> EvolutionConfig:
        return EvolutionConfig(ratings=self.ratings, time_budget=self.time_budget, islands=_set(self.islands),
                               final_shortlist=_set(self.final_shortlist), population=_set(self.population),
                               ranker=self.ranker, rating_batch_size=self.rating_batch_size)  # fmt: skip

    def scored_by(self) -> str:
        return f"the label-free rating {self.ranker} at initialisation"

    def image_floor(self, space: str) -> ImageFloor:
        return ImageFloor(0, _set(self.rating_batch_size))  # trains nothing; rates on one held-out batch


EVOLUTION_FIELDS = ("ranker", "ratings", "islands", "final_shortlist", "population", "rating_batch_size", "channels", "cells")


@dataclass(frozen=True)
class TwoStageSettings(EvolutionSettings):
    """The two-stage search (`TwoStageConfig`): evolution keeps a shortlist (the evolution options),
    then each shortlisted candidate trains briefly without labels and a label-free signal picks.

    time_budget: minutes the whole run may take [15].
    shortlist: candidates judged [as many as fit, up to the space's judge default].
    judge_budget: backbone passes per candidate [the space's judge default, less if time is short].
    judge_objective / judge_signal / judge_combine: the judge's training, signal and the partners
        averaged with it by rank [`ssnas.judging.defaults`].
    """

    bf16_keeps_quality: ClassVar[bool] = JUDGE_BF16_KEEPS_QUALITY  # the judge trains

    time_budget: float | None = None
    shortlist: int | None = None
    judge_budget: int | None = None
    judge_objective: str | None = None
    judge_signal: str | None = None
    judge_combine: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.judge_combine is not None:
            object.__setattr__(self, "judge_combine", tuple(self.judge_combine))

    def options(self, space: str) -> tuple[str, ...]:
        judge = ("shortlist", "judge_budget", "judge_objective", "judge_signal", "judge_combine")
        return (*super().options(space), *judge)

    def resolve(self, space: str, preset: str) -> TwoStageSettings:
        judge = judge_defaults(space)
        # the evolution options of `self`; stage 1 rates a fixed number (the time budget is the whole run's)
        stage1 = EvolutionSettings.resolved(replace(self, time_budget=None), space, None)
        resolved = _fill(replace(self, **{f: getattr(stage1, f) for f in EVOLUTION_FIELDS}), self.options(space),
                         {"time_budget": TwoStageConfig().time_budget, "judge_objective": judge.objective,
                          "judge_signal": judge.signal, "judge_combine": judge.combine})  # fmt: skip
        return resolved

    def create(self, name: str, space: str, preset: str) -> Strategy:
        stage1 = replace(self, time_budget=None).evolution_config()  # the budget is the whole run's (TwoStageConfig)
        return TwoStage(TwoStageConfig(stage1=stage1, time_budget=_set(self.time_budget), shortlist=self.shortlist,
                                       judge_budget=self.judge_budget, judge_objective=self.judge_objective,
                                       judge_signal=self.judge_signal, combine=self.judge_combine))  # fmt: skip

    def scored_by(self) -> str:
        partners = f" with {' + '.join(self.judge_combine)}" if self.judge_combine else ""
        return (f"the label-free rating {self.ranker} at initialisation (stage 1), then {self.judge_signal}{partners} "
                f"after brief {self.judge_objective} training of the shortlist (stage 2)")

    def image_floor(self, space: str) -> ImageFloor:
        """Stage 1's rating batch; the judge's training batch and the held-out batch of its signals."""
        training, holdout = JudgeConfig(objective=_set(self.judge_objective)).least_images()
        return ImageFloor(training, max(_set(self.rating_batch_size), holdout))


@dataclass(frozen=True)
class SetnSettings(Training):
    """SETN: an SSL-trained supernet and a learned evaluator (`SetnConfig`).

    signals: what rates a candidate on the shared weights (`ssnas.strategies.supernet_rating.ALL_SIGNALS`).
    channels / cells: the nb201 supernet's C and N.
    """

    bf16_keeps_quality: ClassVar[bool] = setn.BF16_KEEPS_QUALITY

    objective: str | None = None
    select_num: int | None = None
    evaluator_every: int | None = None
    signals: tuple[str, ...] | None = None
    channels: int | None = None
    cells: int | None = None

    def __post_init__(self) -> None:
        if self.signals is not None:
            object.__setattr__(self, "signals", tuple(self.signals))

    def options(self, space: str) -> tuple[str, ...]:
        return ("objective", *TRAINING, "select_num", "evaluator_every", "signals", *_sized(space, SUPERNET_SIZED))

    def resolve(self, space: str, preset: str) -> SetnSettings:
        return _fill(self, self.options(space), {**PRESETS[preset], "objective": DEFAULT_OBJECTIVE})

    def network(self, space: str) -> dict[str, int]:
        return {}  # the space's own; the supernet takes channels / cells

    def create(self, name: str, space: str, preset: str) -> Strategy:
        return SETN(SetnConfig(select_num=_set(self.select_num), evaluator_every=_set(self.evaluator_every),
                               supernet=_supernet(self.channels, self.cells),
                               rating=RatingConfig(signals=_set(self.signals))))  # fmt: skip

    def scored_by(self) -> str:
        return f"{self.objective} on a shared supernet, candidates rated by {' + '.join(self.signals or ())}"

    def image_floor(self, space: str) -> ImageFloor:
        return ImageFloor(*SUPERNET_FLOOR)


@dataclass(frozen=True)
class OptunaSettings(Training):
    """tpe (CSNAS) and random search: Optuna trials (`StudyConfig`) scored by `ProxyConfig`.

    trial_objective: "ssl-proxy" (train each trial: the objective, training settings and
        proxy_loss apply) or "rating" (a label-free rating at initialisation: ranker and
        rating_batch_size apply).
    proxy_loss: "holdout" (the SSL loss on held-out images) or "train" (the final epoch's
        training loss, as the CSNAS code reports).
    time_budget: minutes after which no trial starts (Optuna's timeout, counted from the first trial).
    storage: journal file, sqlite:/// or postgresql:// URL; None = `study.journal` in the run folder.
    channels / cells: the trial network's size [nb201: the preset's; darts: 32, 8].
    """

    bf16_keeps_quality: ClassVar[bool] = proxy.BF16_KEEPS_QUALITY

    trials: int | None = None
    time_budget: float | None = None
    storage: str | None = None
    study: str | None = None
    trial_objective: str | None = None
    objective: str | None = None
    proxy_loss: str | None = None
    ranker: str | None = None
    rating_batch_size: int | None = None
    channels: int | None = None
    cells: int | None = None

    @property
    def trial_mode(self) -> str:
        """The trial objective, given or default: what decides the options that apply."""
        return self.trial_objective or DEFAULT_TRIAL_OBJECTIVE

    def options(self, space: str) -> tuple[str, ...]:
        shared, network = ("trials", "time_budget", "storage", "study", "trial_objective"), _sized(space, STANDALONE_SIZED)
        if self.trial_mode == "rating":
            return (*shared, "ranker", "rating_batch_size", *network)
        return (*shared, "objective", *TRAINING, "proxy_loss", *network)

    def resolve(self, space: str, preset: str) -> OptunaSettings:
        network = FULL_NETWORK["darts"] if space == "darts" else {}  # CSNAS's proxy network; nb201: the preset's
        defaults = {**PRESETS[preset], **network, "epochs": CSNAS_EPOCHS, "objective": DEFAULT_OBJECTIVE,
                    "trial_objective": DEFAULT_TRIAL_OBJECTIVE, "proxy_loss": "holdout", "study": "ssnas",
                    "ranker": search_defaults(space).ranker,
                    "rating_batch_size": search_defaults(space).batch_size}  # fmt: skip
        return _fill(self, self.options(space), defaults)

    def network(self, space: str) -> dict[str, int]:
        return _standalone_network(space, self.channels, self.cells)

    def create(self, name: str, space: str, preset: str) -> Strategy:
        timeout = self.time_budget * 60.0 - FINISH_SECONDS if self.time_budget is not None else None
        study = StudyConfig(n_trials=_set(self.trials), storage=self.storage, study_name=_set(self.study), timeout=timeout)
        proxy = ProxyConfig(loss=self.proxy_loss or "holdout", trial_objective=_set(self.trial_objective),
                            ranker=self.ranker, rating_batch_size=self.rating_batch_size)  # fmt: skip
        return OptunaSearch(name, study=study, proxy=proxy)

    def scored_by(self) -> str:
        if self.trial_mode == "rating":
            return f"the label-free rating {self.ranker} at initialisation"
        return f"the {self.objective} loss ({self.proxy_loss}) of each trial trained from scratch"

    def image_floor(self, space: str) -> ImageFloor:
        """CSNAS's: one training batch per trial, 256 held-out images."""
        return ImageFloor(self.batch_size or 128, CSNAS_HOLDOUT.floor)


@dataclass(frozen=True)
class BossnasSettings(Training):
    """BossNAS: block-wise ensemble bootstrapping (`BossConfig`); always trains "ensemble-byol".

    select_num: on nb201 (one block of 15,284 cells), the seeded sample of cells rated.
    channels / cells: the nb201 supernet's C and N.
    """

    bf16_keeps_quality: ClassVar[bool] = bossnas.BF16_KEEPS_QUALITY

    select_num: int | None = None
    channels: int | None = None
    cells: int | None = None

    def options(self, space: str) -> tuple[str, ...]:
        return (*TRAINING, *(("select_num", *NETWORK) if space in SUPERNET_SIZED else ()))

    def resolve(self, space: str, preset: str) -> BossnasSettings:
        return _fill(self, self.options(space), PRESETS[preset])

    def network(self, space: str) -> dict[str, int]:
        return {}

    def create(self, name: str, space: str, preset: str) -> Strategy:
        settings: dict[str, Any] = dict(BOSSNAS_QUICK_HEADS) if preset == "quick" else {}
        if space in ("nb201", "nats-size"):  # BossNAS on NATS: one view pair shared by the p paths
            settings["shared_views"] = True
        if space in SUPERNET_SIZED:  # one block of 15,284 cells: rate a seeded sample of them
            settings.update(population=self.select_num, supernet=_supernet(self.channels, self.cells))
        return BossNAS(BossConfig(**settings))

    def scored_by(self) -> str:
        return "ensemble bootstrapping (BossNAS's population-centre rating)"

    def image_floor(self, space: str) -> ImageFloor:
        return ImageFloor(*SUPERNET_FLOOR)


STRATEGY_SETTINGS: dict[str, type[StrategySettings]] = {
    "two-stage": TwoStageSettings, "evolution": EvolutionSettings, "setn": SetnSettings, "tpe": OptunaSettings, "random": OptunaSettings,
    "bossnas": BossnasSettings,
}  # fmt: skip


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


def _floored(share: Share, floor: int) -> Share:
    return replace(share, floor=floor, cap=None if share.cap is None else max(share.cap, floor))


def _sized(space: str, sized: Iterable[str]) -> tuple[str, ...]:
    return NETWORK if space in sized else ()


def _fill(settings: S, used: Iterable[str], defaults: Mapping[str, Any]) -> S:
    """`settings` with every used option that was not given taken from `defaults` (where it has one)."""
    missing = {name: defaults[name] for name in used if getattr(settings, name) is None and name in defaults}
    return replace(settings, **missing)  # type: ignore[type-var]


def _set(value: S | None) -> S:
    """A resolved setting (never None once `resolve` ran)."""
    assert value is not None, "settings are resolved before a strategy is built"
    return value


def _named_network(network: Mapping[str, int]) -> dict[str, int]:
    """`ssnas.rating` network overrides ({"C": .., "N": ..}) under option names."""
    names = {"C": "channels", "N": "cells"}
    return {names[k]: v for k, v in network.items() if k in names}


def _standalone_network(space: str, channels: int | None, cells: int | None) -> dict[str, int]:
    """`create_space` arguments sizing the networks built per architecture."""
    if space == "nb201":
        return {"C": _set(channels), "N": _set(cells)}
    if space == "darts":
        return {"C": _set(channels), "layers": _set(cells)}
    return {}


def _supernet(channels: int | None, cells: int | None) -> dict[str, int]:
    """NB201 supernet width C and cells per stage N, where set."""
    return {k: v for k, v in (("C", channels), ("N", cells)) if v is not None}


__all__ = [
    "NETWORK", "SIZED_SPACES", "STRATEGY_SETTINGS", "TRAINING", "BossnasSettings", "EvolutionSettings", "ImageFloor",
    "OptunaSettings", "RENAMED", "SetnSettings", "StrategySettings", "Training", "TwoStageSettings", "flag", "renamed",
]

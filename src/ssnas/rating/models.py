"""Rate any PyTorch model without labels: timm models and a user's own factories.

A model enters as a factory, a no-argument callable returning a freshly initialised
`nn.Module` on the CPU (rankers compare networks at initialisation, so they must build it;
costs are counted on the CPU, signals run on the engine's device). The engine builds it under
`seeded(seed)` and computes the same signals, through the same code, as for a search space's
architecture (`ssnas.rating.engine`): a space's network given as a factory gets exactly the
values `score_architectures` gives it. Features of a model without the ssnas contract:
`ssnas.rating.registry.features` (timm's pre-logits, else the pooled output).

Model specs (`ssnas rank --models SPEC`, `ssnas.rank("SPEC", ...)`), entries joined by ',':

* `timm:NAME`: `timm.create_model(NAME, pretrained=False, num_classes=10)` (no download;
  timm is the optional extra `pip install "ssnas[timm]"`). Models with a fixed input size
  (ViTs) are built for the rated image size (timm's `img_size`);
* `FILE.py`: every factory the file declares, either a module-level
  `MODELS: dict[str, Callable[[], nn.Module]]` or, without one, the callables named in
  `__all__` (functions or `nn.Module` classes taking no arguments), under those names;
* `FILE.py:NAME`: only the factory NAME of that file.

Images: models are rated on the given images at their own size (32x32 for CIFAR) unless an
image size is given (`--image-size`): then the rating batch is resized (antialiased bilinear)
and FLOPs and latency are counted at that size too.

Costs: `params` (parameter elements), `flops` (multiply-accumulates of one image at the rated
size: convolutions, matrix and attention products, counted by torch's FlopCounterMode in
`ssnas.spaces.cost.count_macs`) and, when asked, latency (ms
of one image, batch 1, fp32, eval, this CPU: `ssnas.spaces.budget`). As rankers, `params` and
`flops` are these costs of the model itself (a space's are of its full-size network).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ssnas.errors import UserError
from ssnas.rating.aggregate import Ranker, parse_ranker
from ssnas.rating.engine import (
    Columns,
    EngineConfig,
    add_signals,
    count_nonfinite,
    initialised,
    rating_batch,
    seconds_per_network,
)
from ssnas.rating.registry import CannotRate
from ssnas.rating.structural import STRUCTURAL
from ssnas.spaces.budget import (
    IMAGE_SIZE,
    NUM_CLASSES,
    OPTIONS,
    UNITS,
    Budget,
    LatencyConfig,
    network_latency_ms,
)
from ssnas.spaces.cost import count_macs, count_parameters

ModelFactory = Callable[[], nn.Module]
TIMM_PREFIX = "timm:"
TIMM_INSTALL = 'pip install "ssnas[timm]"'

MODEL_COSTS = ("params", "flops")  # structural rankers computed on the model itself (raw counts)
_COST_KEYS = {"params": "params_M", "flops": "mflops", "latency_ms": "latency_ms"}  # record keys of the costs


# ----------------------------------------------------------------------------- loading


def load_model_factories(spec: str, image_size: int | None = None) -> dict[str, ModelFactory]:
    """name -> factory for every entry of `spec` ("timm:resnet18,my_models.py,other.py:small");
    `image_size`: the side models will be rated at (fixed-size timm models are built for it)."""
    entries = [entry.strip() for entry in spec.split(",")]
    if not spec.strip() or not all(entries):
        raise UserError(f"malformed --models {spec!r}: join entries with ',', e.g. timm:resnet18,my_models.py")
    factories: dict[str, ModelFactory] = {}
    for entry in entries:
        if entry.startswith(TIMM_PREFIX):
            found = _timm_factory(entry[len(TIMM_PREFIX) :], image_size)
        else:
            found = _file_factories(entry)
        for name, factory in found.items():
            if name in factories:
                raise UserError(f"model name {name!r} is given twice in --models")
            factories[name] = factory
    return factories


def _import_timm() -> ModuleType:
    try:
        import timm
    except ImportError:
        raise UserError(f"timm models need timm: {TIMM_INSTALL}") from None
    except Exception as error:  # noqa: BLE001 - e.g. torchvision built for another torch ("torchvision::nms does not exist")
        raise UserError(f"timm is installed but does not import ({type(error).__name__}: {_first_line(error)}); "
                        f"install the torchvision build that matches torch {torch.__version__}") from None  # fmt: skip
    return timm


def _timm_factory(name: str, image_size: int | None) -> dict[str, ModelFactory]:
    """{name: factory} of a timm architecture, random weights (never pretrained: nothing is downloaded)."""
    timm = _import_timm()
    if not name or not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.75)
        hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
        raise UserError(f"unknown timm model {name!r}{hint}")
    options: dict[str, Any] = {"pretrained": False, "num_classes": NUM_CLASSES}
    config = timm.models.get_pretrained_cfg(name)
    if image_size is not None and getattr(config, "fixed_input_size", False):
        options["img_size"] = image_size  # ViTs: position embeddings for the rated size
    return {name: partial(timm.create_model, name, **options)}


def _file_factories(entry: str) -> dict[str, ModelFactory]:
    """The factories a Python file declares (`MODELS`, else `__all__`), or the one named after ':'."""
    path_text, marker, only = entry.partition(".py:")
    path = Path(path_text + ".py") if marker else Path(entry)
    if path.suffix != ".py":
        raise UserError(f"--models entry {entry!r} is neither timm:NAME nor a Python file (FILE.py or FILE.py:NAME)")
    if not path.is_file():
        raise UserError(f"models file not found: {path}")
    declared = _declared_factories(_import_file(path), path)
    if not marker:
        return declared
    if only not in declared:
        raise UserError(f"{path} declares no model {only!r}; it declares: {', '.join(declared)}")
    return {only: declared[only]}


def _import_file(path: Path) -> ModuleType:
    """Execute the models file as a module (its folder importable while it runs)."""
    name = f"_ssnas_models_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        del sys.modules[name]
        raise UserError(f"{path}:{error.lineno}: syntax error: {error.msg}") from None
    except Exception as error:  # noqa: BLE001 - the user's file: one line, not a traceback
        del sys.modules[name]
        raise UserError(f"{path} failed on import: {type(error).__name__}: {_first_line(error)}") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _declared_factories(module: ModuleType, path: Path) -> dict[str, ModelFactory]:
    declared = getattr(module, "MODELS", None)
    if declared is None:
        names = getattr(module, "__all__", None)
        if names is None:
            raise UserError(f"{path} declares no models: give it MODELS = {{'name': factory, ...}} "
                            f"or name its factory functions in __all__")  # fmt: skip
        missing = [n for n in names if not hasattr(module, n)]
        if missing:
            raise UserError(f"{path}: __all__ names {', '.join(missing)}, which the file does not define")
        declared = {n: getattr(module, n) for n in names}
    if not isinstance(declared, Mapping) or not all(isinstance(k, str) and callable(v) for k, v in declared.items()):
        raise UserError(f"{path}: MODELS / __all__ must name factories (callables returning an nn.Module)")
    if not declared:
        raise UserError(f"{path} declares no models: its MODELS / __all__ is empty")
    return dict(declared)


# ----------------------------------------------------------------------------- scoring


@dataclass
class ModelScores:
    """Per-model values, in the order rated (models over the budget left out, see `excluded`).

    columns[leaf][i]: each signal (and structural ranker) of model i; score[i]: combined (finite,
    higher = better, comparable only within these models); seconds[leaf][i]: time of the pass
    behind leaf (build included); costs: "params" (M), "flops" (MFLOPs at `image_size`) and,
    when measured, "latency_ms"; nonfinite[leaf]: NaN / infinite values (rated last);
    excluded: {"name", costs, "over": [bound...]} for each model the budget left out.
    """

    names: list[str]
    columns: Columns
    score: list[float]
    seconds: Columns
    costs: dict[str, list[float]]
    image_size: int
    nonfinite: dict[str, int] = field(default_factory=dict)
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """One dict per model: name, score, each leaf, params_M, mflops (and latency_ms)."""
        return [
            {"name": name, "score": self.score[i], **{leaf: values[i] for leaf, values in self.columns.items()},
             **{_COST_KEYS[metric]: values[i] for metric, values in self.costs.items()}}
            for i, name in enumerate(self.names)
        ]  # fmt: skip

    def seconds_per_model(self) -> float:
        """Mean seconds per model of the passes behind its leaves (each family once, build included)."""
        return seconds_per_network(self.seconds) if self.names else 0.0


def score_models(
    factories: Mapping[str, ModelFactory],
    ranker: Ranker | str,
    images: torch.Tensor | None,
    config: EngineConfig | None = None,
    *,
    image_size: int | None = None,
    budget: Budget | None = None,
    latency: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ModelScores:
    """Rate each model built by its factory, as `score_architectures` rates a space's networks.

    images: uint8 (N,3,H,W), the seeded rating batch is drawn from them (None: data-free rankers
    only); image_size: rate at SxS instead of H; budget: models over it are measured but not
    rated (listed in `excluded`; a UserError naming the smallest cost when none is left);
    latency: measure latency even without a latency bound. `progress(done, total)` per model.
    """
    ranker = parse_ranker(ranker) if isinstance(ranker, str) else ranker
    config = config or EngineConfig()
    if not factories:
        raise UserError("no models to rate")
    space_only = [leaf for leaf in ranker.leaves() if leaf in STRUCTURAL and leaf not in MODEL_COSTS]
    if space_only:
        raise UserError(f"ranker {', '.join(space_only)} is a cost of a search space's network; it cannot rate a model")
    batch = rating_batch(ranker, images, config, image_size)
    size = image_size or (int(images.shape[-1]) if images is not None else IMAGE_SIZE)
    probe = torch.zeros(1, 3, size, size)  # one image for FLOPs
    limits = budget.limits() if budget else {}
    timing = LatencyConfig(image_size=size) if latency or "latency_ms" in limits else None
    leaves, signals = ranker.leaves(), ranker.signals()
    names: list[str] = []
    columns: Columns = {leaf: [] for leaf in leaves}
    seconds: Columns = {leaf: [] for leaf in leaves}
    costs: dict[str, list[float]] = {}
    excluded: list[dict[str, Any]] = []
    measured: list[tuple[str, dict[str, float]]] = []
    for done, (name, factory) in enumerate(factories.items(), start=1):
        started = time.perf_counter()
        with _about(name, "building it"):
            network = initialised(factory, config.seed)
        if not isinstance(network, nn.Module):
            raise UserError(f"model {name!r}: its factory returned {type(network).__name__}, not a torch.nn.Module")
        built = time.perf_counter() - started
        with _about(name, f"a forward pass on (1,3,{size},{size}) images"):
            started = time.perf_counter()
            counts, cost = _costs(network, probe, timing)
            counted = time.perf_counter() - started
        measured.append((name, cost))
        over = [f"{OPTIONS[m]} {bound:g} ({cost[m]:.4g} {UNITS[m]})" for m, bound in limits.items() if cost[m] > bound]
        if over:
            excluded.append({"name": name, **{_COST_KEYS[m]: v for m, v in cost.items()}, "over": over})
        else:
            names.append(name)
            for metric, value in cost.items():
                costs.setdefault(metric, []).append(value)
            for leaf in leaves:
                if leaf in MODEL_COSTS:
                    columns[leaf].append(counts[leaf])
                    seconds[leaf].append(counted)
            if batch is not None:
                with _about(name, "rating"):
                    try:
                        add_signals(columns, seconds, network.to(batch.device), signals, batch, config.seed, built)
                    except CannotRate as error:
                        raise CannotRate(f"ranker {ranker.text!r} cannot rate it: {error}") from None
        if progress is not None:
            progress(done, len(factories))
    if not names:
        raise UserError(_nothing_within(limits, measured))
    nonfinite = count_nonfinite(columns)
    return ModelScores(names, columns, ranker.combine(columns), seconds, costs, size, nonfinite, excluded)


def _costs(
    network: nn.Module, probe: torch.Tensor, timing: LatencyConfig | None
) -> tuple[dict[str, float], dict[str, float]]:
    """Raw counts {"params", "flops"} (the structural rankers' values) and the budget metrics
    {"params" (M), "flops" (MFLOPs of `probe`), "latency_ms" when timed} of a CPU network."""
    counts = {"params": float(count_parameters(network)), "flops": float(count_macs(network, probe))}
    cost = {"params": counts["params"] / 1e6, "flops": counts["flops"] / 1e6}
    if timing is not None:
        cost["latency_ms"] = network_latency_ms(network, timing)
    return counts, cost


def _nothing_within(limits: dict[str, float], measured: Sequence[tuple[str, dict[str, float]]]) -> str:
    """The refusal when the budget leaves no model: the bound no model meets, with the smallest cost."""
    for metric, bound in limits.items():
        smallest, name = min((cost[metric], name) for name, cost in measured)
        if smallest > bound:
            return (f"no model meets {OPTIONS[metric]} {bound:g}: "
                    f"the smallest is {smallest:.4g} {UNITS[metric]} ({name})")  # fmt: skip
    bounds = " and ".join(f"{OPTIONS[m]} {v:g}" for m, v in limits.items())
    return f"no model meets {bounds} together; relax one of them"


@contextmanager
def _about(model: str, doing: str) -> Iterator[None]:
    """Errors inside become one line naming the model (a user's model can fail anywhere)."""
    try:
        yield
    except UserError as error:  # CannotRate and the like keep their type
        raise type(error)(f"model {model!r}: {error}") from None
    except Exception as error:  # a user's model: one line, not a traceback
        raise UserError(f"model {model!r}: {doing} failed: {type(error).__name__}: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"

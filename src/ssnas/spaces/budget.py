"""Compute budgets: FLOPs, parameters and measured latency, checked per architecture.

Units follow the NAS benchmarks: FLOPs are millions of multiply-accumulates of one
32x32 image through the 10-class network (NAS-Bench-201 reports its cells as 7.8 to
220.1 "MFLOPs" in this convention; BN, activations, pooling and additions are not
counted), parameters are millions of parameter elements of the same network, and
latency is milliseconds of one forward pass of a batch of one image, fp32, eval mode,
on the machine running the search with its current torch thread count (both recorded).

A strategy asks `Constraint.admits(arch)` before it proposes or keeps a candidate;
`Constraint.check_feasible()` refuses a budget no architecture meets, naming the
smallest achievable cost.

>>> budget = Budget(max_flops=50.0)                                  # doctest: +SKIP
>>> constraint = Constraint(create_space("nb201"), budget)           # doctest: +SKIP
>>> constraint.check_feasible(); constraint.admits(arch)             # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ssnas.atomic import write_atomic
from ssnas.errors import UserError
from ssnas.spaces.base import Architecture, SearchSpace, SupportsEnumerate, SupportsMutate
from ssnas.spaces.cost import count_macs, count_parameters

IMAGE_SIZE = 32
NUM_CLASSES = 10
ENUMERATE_LIMIT = 100_000  # spaces up to this size are enumerated for exact minima and feasible sets
UNITS = {"flops": "MFLOPs", "params": "M parameters", "latency_ms": "ms"}
OPTIONS = {"flops": "--max-flops", "params": "--max-params", "latency_ms": "--max-latency-ms"}


@dataclass(frozen=True)
class Budget:
    """Upper bounds on cost; None = no bound. FLOPs in millions of MACs, params in millions."""

    max_flops: float | None = None
    max_params: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self) -> None:
        for metric, value in self.limits().items():
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{OPTIONS[metric]} must be a positive number, got {value}")

    def limits(self) -> dict[str, float]:
        """metric ("flops" | "params" | "latency_ms") -> bound, for the bounds that are set."""
        values = {"flops": self.max_flops, "params": self.max_params, "latency_ms": self.max_latency_ms}
        return {k: float(v) for k, v in values.items() if v is not None}

    def __bool__(self) -> bool:
        return bool(self.limits())


@dataclass(frozen=True)
class LatencyConfig:
    """How latency is measured: batch 1, fp32, `warmup` untimed then the median of `repeats`."""

    warmup: int = 3
    repeats: int = 10
    image_size: int = IMAGE_SIZE


class CostModel:
    """FLOPs, parameters (closed form where the space has it, else counted on the built
    network) and measured latency of architectures, each cached per architecture key.

    Latency values are also kept in `cache_file` (JSON) when given, so a resumed search
    measures no architecture twice; the file records the threads and the CPU they ran on.
    """

    def __init__(self, space: SearchSpace, latency: LatencyConfig | None = None, cache_file: Path | None = None) -> None:
        self.space = space
        self.latency_config = latency or LatencyConfig()
        self.cache_file = cache_file
        self._cache: dict[str, dict[str, float]] = {}
        self._latency: dict[str, float] = self._load_latency()

    def setting(self) -> dict[str, Any]:
        """Where and how latency is measured (stored in result.json)."""
        return {
            "batch_size": 1, "precision": "fp32", "threads": torch.get_num_threads(),
            "image_size": self.latency_config.image_size, "cpu": cpu_model(), "machine": platform.machine(),
        }  # fmt: skip

    def flops(self, arch: Architecture) -> float:
        return self._static(arch, "flops")

    def params(self, arch: Architecture) -> float:
        return self._static(arch, "params")

    def value(self, arch: Architecture, metric: str) -> float:
        return self.latency_ms(arch) if metric == "latency_ms" else self._static(arch, metric)

    def _static(self, arch: Architecture, metric: str) -> float:
        """FLOPs or params in millions: the space's closed form if it has one, else counted on the network."""
        cached = self._cache.setdefault(arch.key, {})
        if metric not in cached:
            closed_form = getattr(self.space, "flops" if metric == "flops" else "num_parameters", None)
            if closed_form is not None:
                cached[metric] = closed_form(arch) / 1e6
            else:
                network = _built(self.space, arch)
                cached.setdefault("flops", _macs(network) / 1e6)
                cached.setdefault("params", count_parameters(network) / 1e6)
        return cached[metric]

    def latency_ms(self, arch: Architecture) -> float:
        if arch.key not in self._latency:
            self._latency[arch.key] = measure_latency(self.space, arch, self.latency_config)
            self._save_latency()
        return self._latency[arch.key]

    def attach(self, cache_file: Path) -> None:
        """Keep latency values in `cache_file` from now on (values already there are reused)."""
        self.cache_file = cache_file
        self._latency = {**self._load_latency(), **self._latency}
        if self._latency:
            self._save_latency()

    def _load_latency(self) -> dict[str, float]:
        if self.cache_file is None or not self.cache_file.exists():
            return {}
        try:
            payload = json.loads(self.cache_file.read_bytes())
            if payload.get("setting") != self.setting():
                return {}  # measured elsewhere or with other threads: measure again
            return {str(k): float(v) for k, v in payload["latency_ms"].items()}
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):  # a damaged cache: measure again
            return {}

    def _save_latency(self) -> None:
        if self.cache_file is None:
            return
        write_atomic(self.cache_file, json.dumps({"setting": self.setting(), "latency_ms": self._latency}))


def _macs(network: Any) -> int:
    return count_macs(network, torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE))


def measure_latency(space: SearchSpace, arch: Architecture, config: LatencyConfig) -> float:
    """Median milliseconds of one fp32 forward of one (1,3,S,S) image, eval mode, on the CPU."""
    return network_latency_ms(_built(space, arch), config)


def _built(space: SearchSpace, arch: Architecture) -> torch.nn.Module:
    """`arch`'s 10-class network for counting or timing: costs do not depend on the weights, so the
    global random state is put back afterwards (a report or a budget check draws nothing from it)."""
    with torch.random.fork_rng(devices=[]):
        return space.build(arch, num_classes=NUM_CLASSES)


@torch.inference_mode()
def network_latency_ms(network: torch.nn.Module, config: LatencyConfig) -> float:
    """`measure_latency` of any CPU network (run in eval mode; its train/eval mode is put back)."""
    was_training = network.training
    network.eval()
    x = torch.zeros(1, 3, config.image_size, config.image_size)
    times = []
    try:
        for _ in range(config.warmup):
            network(x)
        for _ in range(config.repeats):
            start = time.perf_counter()
            network(x)
            times.append(time.perf_counter() - start)
    finally:
        network.train(was_training)
    return 1000.0 * statistics.median(times)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Constraint:
    """A budget applied to a space: admits, samples and mutates within it.

    Static bounds (FLOPs, params) are checked before latency, so latency is only
    measured for architectures that already meet them.
    """

    def __init__(self, space: SearchSpace, budget: Budget, costs: CostModel | None = None) -> None:
        self.space, self.budget = space, budget
        self.costs = costs or CostModel(space)
        self.limits = budget.limits()
        self._order = sorted(self.limits, key=lambda m: m == "latency_ms")  # cheap checks first
        self._feasible: list[Architecture] | None = None

    def admits(self, arch: Architecture) -> bool:
        return all(self.costs.value(arch, m) <= self.limits[m] for m in self._order)

    def cost(self, arch: Architecture) -> dict[str, float]:
        """Every metric of the budget for `arch` (FLOPs and params always)."""
        out = {"flops": self.costs.flops(arch), "params": self.costs.params(arch)}
        if "latency_ms" in self.limits:
            out["latency_ms"] = self.costs.latency_ms(arch)
        return out

    def report(self, arch: Architecture) -> dict[str, Any]:
        """The found architecture's cost next to the budget (for result.json)."""
        cost = self.cost(arch)
        payload: dict[str, Any] = {
            "units": {m: UNITS[m] for m in cost},
            "cost": cost,
            "limits": dict(self.limits),
            "within": all(cost[m] <= v for m, v in self.limits.items()),
        }
        if "latency_ms" in cost:
            payload["latency_setting"] = self.costs.setting()
        return payload

    # -- feasibility ----------------------------------------------------------------------------

    def _enumerable(self) -> bool:
        return isinstance(self.space, SupportsEnumerate) and self.space.size() <= ENUMERATE_LIMIT

    def feasible_static(self) -> list[Architecture] | None:
        """Every architecture meeting the FLOPs / params bounds (None: space too large to list)."""
        if self._feasible is None and self._enumerable():
            assert isinstance(self.space, SupportsEnumerate)
            static = [m for m in self._order if m != "latency_ms"]
            self._feasible = [
                a for a in self.space.enumerate() if all(self.costs.value(a, m) <= self.limits[m] for m in static)
            ]  # fmt: skip
        return self._feasible

    def check_feasible(self, rng: random.Random | None = None) -> None:
        """UserError naming the smallest achievable cost when no architecture meets the budget."""
        rng = rng or random.Random(0)
        static = [m for m in self._order if m != "latency_ms"]
        feasible = self.feasible_static()
        for metric in static:
            smallest, arch = self.smallest(metric, rng)
            if smallest > self.limits[metric]:
                self._refuse(metric, smallest, arch, exact=self._enumerable())
        if static and feasible is not None and not feasible:
            bounds = " and ".join(f"{OPTIONS[m]} {self.limits[m]:g}" for m in static)
            raise UserError(f"no {self.space.name} architecture meets {bounds} together; relax one of them")
        if "latency_ms" in self.limits:
            pool = feasible if feasible is not None else None
            smallest, arch = self.smallest("latency_ms", rng, pool)
            if smallest > self.limits["latency_ms"]:
                self._refuse("latency_ms", smallest, arch, exact=False)

    def _refuse(self, metric: str, smallest: float, arch: Architecture, exact: bool) -> None:
        kind = "smallest" if exact else "smallest found"
        raise UserError(
            f"no {self.space.name} architecture meets {OPTIONS[metric]} {self.limits[metric]:g}: the {kind} "
            f"is {smallest:.4g} {UNITS[metric]} ({arch.key})"
        )

    def smallest(self, metric: str, rng: random.Random, pool: list[Architecture] | None = None) -> tuple[float, Architecture]:
        """The least `metric` over the space: exact by enumeration for FLOPs / params of a small space;
        latency is measured on the 5 architectures of `pool` (or the space) with the fewest FLOPs;
        otherwise a coordinate descent from random starts (an upper bound on the minimum)."""
        if metric == "latency_ms":
            candidates = pool if pool else self._fewest_flops_candidates(rng)
            fewest = sorted(candidates, key=self.costs.flops)[:5]
            return min((self.costs.latency_ms(a), a) for a in fewest)
        if self._enumerable():
            assert isinstance(self.space, SupportsEnumerate)
            return min(((self.costs.value(a, metric), a) for a in self.space.enumerate()), key=lambda t: t[0])
        starts = [self.space.sample(rng) for _ in range(4)]
        return min((descend(self.space, a, lambda x: self.costs.value(x, metric)) for a in starts), key=lambda t: t[0])

    def _fewest_flops_candidates(self, rng: random.Random) -> list[Architecture]:
        if self._enumerable():
            assert isinstance(self.space, SupportsEnumerate)
            return list(self.space.enumerate())
        return [descend(self.space, self.space.sample(rng), self.costs.flops)[1] for _ in range(4)]

    # -- proposals within the budget ---------------------------------------------------------------

    def sample(self, rng: random.Random, accept: Callable[[Architecture], bool] | None = None,
               max_tries: int = 10_000) -> Architecture:  # fmt: skip
        """A uniformly random architecture within the budget (and `accept`, if given)."""
        feasible = self.feasible_static()
        for _ in range(max_tries):
            arch = rng.choice(feasible) if feasible else self.space.sample(rng)
            if self.admits(arch) and (accept is None or accept(arch)):
                return arch
        raise UserError(f"no architecture within the budget found in {max_tries} random draws; relax the budget")

    def mutate(self, arch: Architecture, rng: random.Random, accept: Callable[[Architecture], bool] | None = None,
               max_tries: int = 200) -> Architecture:  # fmt: skip
        """A mutation of `arch` within the budget; a fresh sample when none is found in `max_tries`."""
        for _ in range(max_tries):
            child = mutate(self.space, arch, rng)
            if self.admits(child) and (accept is None or accept(child)):
                return child
        return self.sample(rng, accept)


def mutate(space: SearchSpace, arch: Architecture, rng: random.Random) -> Architecture:
    """The space's own mutation, else one decision changed to another option (uniformly)."""
    if isinstance(space, SupportsMutate):
        return space.mutate(arch, rng)
    options = list(space.choices().values())
    choices = list(arch.choices)
    for _ in range(100):  # constrained spaces (HyTra) reject some single changes
        i = rng.randrange(len(options))
        others = [o for o in options[i] if o != choices[i]]
        if not others:
            continue
        candidate = [*choices[:i], rng.choice(others), *choices[i + 1 :]]
        try:
            return space.make(candidate)
        except UserError:
            continue
    return space.sample(rng)


def descend(space: SearchSpace, start: Architecture, cost: Callable[[Architecture], float],
            rounds: int = 3) -> tuple[float, Architecture]:  # fmt: skip
    """Coordinate descent on `cost` over single-decision changes; (cost, architecture) at the end."""
    best, best_cost = start, cost(start)
    options = list(space.choices().values())
    for _ in range(rounds):
        improved = False
        for i, opts in enumerate(options):
            for option in opts:
                if option == best.choices[i]:
                    continue
                try:
                    candidate = space.make([*best.choices[:i], option, *best.choices[i + 1 :]])
                except UserError:
                    continue
                value = cost(candidate)
                if value < best_cost:
                    best, best_cost, improved = candidate, value, True
        if not improved:
            break
    return best_cost, best


def within(constraint: Constraint | None, archs: Iterable[Architecture]) -> list[Architecture]:
    """The architectures a constraint admits (all of them without one)."""
    return [a for a in archs if constraint is None or constraint.admits(a)]


__all__ = [
    "Budget",
    "Constraint",
    "CostModel",
    "LatencyConfig",
    "cpu_model",
    "descend",
    "measure_latency",
    "mutate",
    "network_latency_ms",
    "within",
]

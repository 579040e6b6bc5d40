"""Rankers: signal names and their ensembles, combined into one score per architecture.

A ranker is a name or an ensemble of names joined by '+':

* structural rankers (`params`, `flops`): costs of the full-size network;
* signals (`meco`, `naswot`, `synflow`, `az-expressivity`, `zico-ssl`, ...): computed on each
  architecture's network by the engine (`ssnas.rating.engine`);
* composites with their paper's aggregation, e.g. `az-nas` (Lee & Ham, CVPR 2024).

`init-<signal>` is accepted as another spelling of `<signal>` (rating at initialisation, as
SETN's `--rating` names it).

Ensembles combine their parts by `aggregate`:

* `mean-rank`: mean over parts of rank/N (ties share the mean rank);
* `log-rank`: sum over parts of log(rank/N) (AZ-NAS's rule, punishes a part that ranks low).

Non-finite values (the one policy): a NaN or an infinity (+inf included) is rated LAST in
its signal, below every finite value, in ensembles and single signals alike; the engine
counts them and logs a warning. A single signal's score is its raw value with non-finite
values replaced by (lowest finite value - 1), so scores are always finite. Higher is better
everywhere; a combined score is only comparable within one set of architectures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ssnas.errors import UserError
from ssnas.rating.registry import SIGNALS
from ssnas.rating.structural import STRUCTURAL

INIT_PREFIX = "init-"


def rated_last(values: Sequence[float]) -> np.ndarray:
    """`values` as float64 with every NaN / +-inf replaced by (lowest finite value - 1)."""
    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    floor = float(array[finite].min()) - 1.0 if finite.any() else 0.0
    return np.where(finite, array, floor)


def fractional_ranks(values: Sequence[float]) -> np.ndarray:
    """rank/N in (0, 1] (ties share the mean rank; non-finite values rank last)."""
    from scipy.stats import rankdata  # imported late: scipy.stats slows CLI start

    return rankdata(rated_last(values)) / len(values)


def mean_rank(columns: Sequence[Sequence[float]]) -> list[float]:
    return [float(v) for v in np.mean([fractional_ranks(c) for c in columns], axis=0)]


def log_rank(columns: Sequence[Sequence[float]]) -> list[float]:
    return [float(v) for v in np.sum(np.log([fractional_ranks(c) for c in columns]), axis=0)]


AGGREGATIONS: dict[str, Callable[[Sequence[Sequence[float]]], list[float]]] = {
    "mean-rank": mean_rank,
    "log-rank": log_rank,
}

def combine(columns: Sequence[Sequence[float]], aggregate: str = "mean-rank") -> list[float]:
    """One finite score per architecture: a single column keeps its values (non-finite ones rated
    last), several combine by `aggregate` ("mean-rank" or "log-rank")."""
    if len(columns) == 1:
        return [float(v) for v in rated_last(columns[0])]
    return AGGREGATIONS[aggregate](columns)


# name -> (parts, aggregation): published or measured combinations, used as one ranker.
COMPOSITES: dict[str, tuple[tuple[str, ...], str]] = {
    "az-nas": (("az-expressivity", "az-progressivity", "az-trainability", "flops"), "log-rank"),
    # AZ-NAS's expressivity and progressivity with its trainability replaced by the label-free
    # ZiCo (NT-Xent gradients), log-rank; chosen on the NB201 development half (docs/benchmarks.md).
    "az-nas-ssl": (("az-expressivity", "az-progressivity", "zico-ssl"), "log-rank"),
    # AZ-NAS's expressivity with SynFlow, log-rank; the best ensemble of up to three signals on
    # the NATS size development half (docs/benchmarks.md).
    "az-synflow": (("az-expressivity", "synflow"), "log-rank"),
    # VKDNW_agg (Týbl & Neumann, CVPR 2025): VKDNW_single with AZ-NAS's expressivity and
    # trainability and FLOPs, log-rank; the paper's fifth part, Jacov, is not in ssnas. NB201
    # development half, Spearman: 0.887 at C=16, N=5, 64 images (az-nas 0.881); 0.835 at C=8, N=1 (0.863).
    "vkdnw-agg": (("vkdnw", "az-expressivity", "az-trainability", "flops"), "log-rank"),
}


def ranker_names() -> list[str]:
    """Every single ranker name (ensembles join these with '+')."""
    return sorted({*STRUCTURAL.names(), *SIGNALS.names(), *COMPOSITES})


def canonical(name: str) -> str:
    """A signal name without the `init-` spelling (`init-meco` -> `meco`)."""
    bare = name.removeprefix(INIT_PREFIX)
    return bare if bare != name and bare in SIGNALS else name


@dataclass(frozen=True)
class Ranker:
    """A parsed ranker: `parts` are names or nested composites, combined by `aggregate`."""

    text: str
    parts: tuple[str | Ranker, ...]
    aggregate: str

    def leaves(self) -> list[str]:
        """Every signal / structural name the ranker needs, in first-use order."""
        names: list[str] = []
        for part in self.parts:
            for name in part.leaves() if isinstance(part, Ranker) else [part]:
                if name not in names:
                    names.append(name)
        return names

    def signals(self) -> list[str]:
        """The leaves computed on networks (the rest are structural)."""
        return [name for name in self.leaves() if name in SIGNALS]

    def combine(self, columns: dict[str, list[float]]) -> list[float]:
        """One finite score per architecture from the leaf columns (higher = better)."""
        return combine([part.combine(columns) if isinstance(part, Ranker) else columns[part] for part in self.parts],
                       self.aggregate)

    @property
    def needs_images(self) -> bool:
        return any(not SIGNALS.of(name).data_free for name in self.signals())


def parse_ranker(text: str, aggregate: str = "mean-rank") -> Ranker:
    """'meco', 'az-nas', 'meco+naswot', 'init-meco+init-synflow' ... -> Ranker (UserError naming
    the choices for an unknown name or aggregation)."""
    if aggregate not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {aggregate!r}; choose from: {', '.join(AGGREGATIONS)}")
    names = [canonical(name.strip()) for name in text.split("+")]
    if not text.strip() or any(not name for name in names):
        raise UserError(f"malformed ranker {text!r}; join names with '+', e.g. meco+az-nas")
    parts: list[str | Ranker] = []
    for name in names:
        if name in COMPOSITES:
            inner, rule = COMPOSITES[name]
            parts.append(Ranker(name, inner, rule))
        elif name in STRUCTURAL or name in SIGNALS:
            parts.append(name)
        else:
            raise UserError(f"unknown ranker {name!r}; choose from: {', '.join(ranker_names())}")
    return Ranker(text, tuple(parts), aggregate)

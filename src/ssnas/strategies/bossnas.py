"""BossNAS: block-wise self-supervised search (Li et al., ICCV 2021; code: changlin31/BossNAS).

For block k = 0, 1, ...:

1. train block k with ensemble bootstrapping (`ssnas.objectives.ensemble`), blocks < k
   frozen on their chosen paths: one `train(...)` call per block (fresh optimizer, EMA
   momentum schedule restarting at 0.99, checkpoints in `out_dir/block{k}`). Each step a
   `PathSampler` hook draws p paths of block k: "fair" (every layer's options permuted, so
   each option appears at most once per layer across the p paths, FairNAS-style) when the
   block's candidates are (nearly) all combinations of per-layer options, else p distinct
   candidates;
2. rate block k's candidates against the *population centre* (`rate_paths`, §3.4): each
   candidate's BN statistics are re-estimated on one fixed batch of training images, then on
   held-out views `loss_j = head(o_j(v1), C2) + head(o_j(v2), C1)` with `C = mean_j t_j(v)`
   the mean raw target projection over all rated candidates; lower is better;
3. fix the best path of block k and go on (HyTra: block k+1's candidates start where it ended).

`BossNAS.search` returns the greedy architecture; `BossNAS.rate` scores given architectures
additively, `score = -sum_k loss_k(path_k)`, each block's loss computed once per path.

A space without blocks but with a supernet and an enumeration (NB201) is searched as one
block whose paths are its whole architectures (`WholeNetworkBlock`).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ssnas.data.views import VIEWS, MultiView, ViewMaker
from ssnas.atomic import write_atomic
from ssnas.errors import UserError
from ssnas.faults import fault_point
from ssnas.objectives import create_objective
from ssnas.objectives.base import Batch, forward_features_of
from ssnas.objectives.ensemble import EnsembleBootstrap, cosine_head
from ssnas.spaces import Architecture, SearchSpace, SupportsBlocks, SupportsEnumerate, SupportsSupernet, is_degenerate
from ssnas.spaces.base import Block
from ssnas.spaces.bn import batch_norms, recalibrate_bn
from ssnas.strategies import STRATEGIES
from ssnas.strategies.base import ScoredArch, SearchResult, SearchTask, Strategy
from ssnas.strategies.settings import (
    NETWORK, PRESETS, SUPERNET_FLOOR, SUPERNET_SIZED, TRAINING, ImageFloor, Training, fill, settings_for,
    supernet_size,
)  # fmt: skip
from ssnas.rating import SIGNALS, network_signals
from ssnas.runfolder import corrupt, read_json
from ssnas.training.distributed import is_main_process
from ssnas.training.loop import TrainResult, train
from ssnas.training.precision import resolve_device, resolve_precision
from ssnas.training.progress import track
from ssnas.training.seeding import seeded

log = logging.getLogger(__name__)

# The blocks' training decides BossNAS's rating; bf16 was not measured to keep its quality, so
# `auto` trains them in fp32 (`ssnas.training.precision`).
BF16_KEEPS_QUALITY = False

BlockPath = tuple[str, ...]  # one block's choices


# ---------------------------------------------------------------- one-block view of a supernet space


class PooledSupernet(nn.Module):
    """`forward_blocks(x, [choices])` of a whole-architecture supernet: its pooled features
    as a (B, D, 1, 1) map, so a one-block space meets the block-supernet contract."""

    def __init__(self, space: SearchSpace, supernet: nn.Module) -> None:
        super().__init__()
        self.space, self.supernet = space, supernet

    def forward_blocks(self, x: torch.Tensor, paths: Sequence[Sequence[str]]) -> torch.Tensor:
        if len(paths) != 1:
            raise ValueError(f"a whole-network block has exactly one path, got {len(paths)}")
        features = forward_features_of(self.supernet, x, arch=self.space.make(paths[0]))  # (B, D)
        return features[:, :, None, None]  # (B, D) -> (B, D, 1, 1)


class WholeNetworkBlock:
    """A supernet space seen as one block whose paths are its (non-degenerate) architectures
    (BossNAS's rating applied to NB201 cells)."""

    def __init__(self, space: SearchSpace) -> None:
        if not isinstance(space, SupportsSupernet) or not isinstance(space, SupportsEnumerate):
            raise UserError(f"BossNAS needs a block-wise space, or one with a supernet and an enumeration; "
                            f"{space.name!r} has neither")  # fmt: skip
        self.space = space

    def blocks(self) -> Sequence[Block]:
        return [Block(0, tuple(self.space.choices()))]

    def block_paths(self, block: int, previous: Sequence[BlockPath] = ()) -> list[BlockPath]:
        if block != 0 or previous:
            raise ValueError(f"{self.space.name} is a single block")
        return [a.choices for a in self.space.enumerate() if not is_degenerate(self.space, a)]

    def build_block_supernet(self, **kwargs: Any) -> PooledSupernet:
        return PooledSupernet(self.space, self.space.build_supernet(**kwargs))


def as_block_space(space: SearchSpace) -> SupportsBlocks:
    """The space itself when block-wise, else its one-block view (UserError if neither)."""
    return space if isinstance(space, SupportsBlocks) else WholeNetworkBlock(space)


def split_paths(blocks: Sequence[Block], arch: Architecture) -> list[BlockPath]:
    """An architecture's choices cut into its per-block paths."""
    paths, start = [], 0
    for block in blocks:
        paths.append(tuple(arch.choices[start : start + len(block.decisions)]))
        start += len(block.decisions)
    return paths


# ---------------------------------------------------------------- path sampling


def layer_options(candidates: Sequence[BlockPath]) -> list[list[str]]:
    """Options seen at each layer of the candidates, in first-appearance order."""
    options: list[dict[str, None]] = [{} for _ in candidates[0]]
    for path in candidates:
        for layer, option in enumerate(path):
            options[layer].setdefault(option, None)
    return [list(o) for o in options]


def fair_paths(options: Sequence[Sequence[str]], count: int, generator: torch.Generator) -> list[BlockPath]:
    """`count` paths such that each layer's options appear at most once across them (exactly
    once when `count` equals the number of options): one random permutation per layer."""
    if count > min(len(o) for o in options):
        raise ValueError(f"fair sampling of {count} paths needs at least {count} options per layer")
    columns = [[layer[int(i)] for i in torch.randperm(len(layer), generator=generator)[:count]] for layer in options]
    return [tuple(column[i] for column in columns) for i in range(count)]


class PathSampler:
    """StepHook: `paths=[{"path": p_1}, ..., {"path": p_count}]` for `EnsembleBootstrap`.

    Fair sampling (`fair_paths`, redrawn until every path is a candidate) when `fair`, else
    `count` distinct candidates uniformly without replacement.
    """

    MAX_DRAWS = 1000

    def __init__(self, candidates: Sequence[BlockPath], count: int, fair: bool) -> None:
        self.candidates = list(candidates)
        self.allowed = set(self.candidates)
        self.options = layer_options(self.candidates)
        self.count, self.fair = count, fair

    def sample(self, generator: torch.Generator) -> list[BlockPath]:
        if self.fair:
            for _ in range(self.MAX_DRAWS):
                paths = fair_paths(self.options, self.count, generator)
                if all(p in self.allowed for p in paths):
                    return paths
            raise ValueError(f"no fair draw of {self.count} candidate paths in {self.MAX_DRAWS} tries")
        picks = torch.randperm(len(self.candidates), generator=generator)[: self.count]
        return [self.candidates[int(i)] for i in picks]

    def model_kwargs(self, step: int, generator: torch.Generator) -> dict[str, Any]:
        return {"paths": [{"path": p} for p in self.sample(generator)]}

    def after_step(self, step: int, batch: Batch) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}  # all randomness comes from the loop's hook generator, which it checkpoints

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def default_sampling(candidates: Sequence[BlockPath], count: int | None) -> tuple[int, bool]:
    """(paths per step, fair?): fair with one path per option when the candidates cover at least
    half of all per-layer combinations (NATS, MBConv, NB201), else 4 distinct paths (HyTra)."""
    options = layer_options(candidates)
    fair = len(set(candidates)) >= 0.5 * math.prod(len(o) for o in options)
    if count is None:
        count = min(len(o) for o in options) if fair else 4
    count = min(count, len(candidates))
    return count, fair and count <= min(len(o) for o in options)


# ---------------------------------------------------------------- the trained network of one stage


def _forward_blocks(
    supernet: nn.Module, x: torch.Tensor, paths: Sequence[Sequence[str]], **kwargs: Any
) -> torch.Tensor:
    """`supernet.forward_blocks(x, paths, **kwargs)`, the block supernet's (B, C, H, W) map (torch's
    stubs type an attribute of a plain `nn.Module` as `Tensor | Module`)."""
    return cast(Callable[..., torch.Tensor], supernet.forward_blocks)(x, paths, **kwargs)


@torch.no_grad()
def _modules_run(supernet: nn.Module, x: torch.Tensor, paths: Sequence[BlockPath]) -> tuple[set[nn.Module], int]:
    """Modules whose forward ran for `forward_blocks(x, paths)`, and the output channels."""
    ran: set[nn.Module] = set()
    handles = [m.register_forward_pre_hook(lambda module, _: ran.add(module)) for m in supernet.modules()]
    try:
        channels = _forward_blocks(supernet, x, paths).shape[1]
    finally:
        for handle in handles:
            handle.remove()
    return ran, channels


class PrefixCache:
    """The frozen blocks' outputs for the last few input tensors, keyed by tensor identity.

    A hit needs the very same tensor object (held here, so its id cannot be reused), unchanged
    in place, and the same train/eval mode. Outputs are computed under `no_grad`: the prefix's
    parameters are frozen and its input needs no gradient, so nothing upstream is lost.

    A deep copy shares the cache: the EMA target (a copy of the stage) then reuses the online
    prefix's outputs, which is exact because frozen parameters stay equal under the EMA
    (`update_momentum` lerps) and BN in train mode normalises by the batch's statistics.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> PrefixCache:
        return self

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.entries: list[tuple[torch.Tensor, int, bool, torch.Tensor]] = []
        self.hits = self.misses = 0

    def get(self, x: torch.Tensor, training: bool, compute: Any) -> torch.Tensor:
        for key, version, mode, value in self.entries:
            if key is x and version == x._version and mode == training:
                self.hits += 1
                return value
        self.misses += 1
        with torch.no_grad():
            value = compute(x)
        self.entries = [*self.entries[-(self.size - 1) :], (x, x._version, training, value)]
        return value

    def clear(self) -> None:
        self.entries = []


class BlockStage(nn.Module):
    """Blocks 0..k of a block supernet: 0..k-1 on `fixed_paths`, block k on the path given per
    call, then a neck adapter (1x1 conv + BN to `width` channels, one per output width, BossNAS
    §3.2) and global pooling: `forward_features(x, path) -> (B, width)`.

    With `cache` set (a `PrefixCache`; BossNAS sets one for the training of the block, when the
    supernet's `forward_blocks` takes `start`), the frozen blocks run once per input tensor
    instead of once per sampled path: the p paths of a step share a view batch. Same losses
    and weights; only the frozen blocks' BN running statistics (read by nothing: training
    normalises by batch statistics, rating re-estimates them) are updated once per view batch.

    Parameters that the fixed prefix uses get `requires_grad=False` (so `train` leaves them out
    of the optimizer); all others stay trainable (only block k's receive gradients). The output
    width of a block is assumed to depend on its last choice only (true for every space here).

    Args:
        probe: a few float images (B>=2, 3, H, W) on the supernet's device, run once to find
            the prefix's modules and the output widths.
    """

    def __init__(
        self, supernet: nn.Module, fixed_paths: Sequence[BlockPath], candidates: Sequence[BlockPath], width: int,
        probe: torch.Tensor,
    ) -> None:  # fmt: skip
        super().__init__()
        self.supernet = supernet
        self.fixed = tuple(tuple(p) for p in fixed_paths)
        self.feature_dim = width
        was_training = supernet.training
        supernet.eval()
        frozen = _modules_run(supernet, probe, self.fixed)[0] if self.fixed else set()
        by_last = {path[-1]: path for path in candidates}
        widths = sorted({_modules_run(supernet, probe, [*self.fixed, p])[1] for p in by_last.values()})
        supernet.train(was_training)
        self.adapters = nn.ModuleDict(
            {str(c): nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width)) for c in widths}
        )
        supernet.requires_grad_(True)
        for module in frozen:
            for p in module.parameters(recurse=False):  # only its own: containers run too
                p.requires_grad_(False)
        self.frozen_parameters = sum(p.numel() for m in frozen for p in m.parameters(recurse=False))
        self.cache: PrefixCache | None = None

    def forward_features(self, x: torch.Tensor, path: Sequence[str]) -> torch.Tensor:
        if self.cache is not None and self.fixed:
            prefix = self.cache.get(x, self.training, lambda v: _forward_blocks(self.supernet, v, self.fixed))
            fmap = _forward_blocks(self.supernet, prefix, [*self.fixed, tuple(path)], start=len(self.fixed))
        else:
            fmap = _forward_blocks(self.supernet, x, [*self.fixed, tuple(path)])  # (B, C, H, W)
        return self.adapters[str(fmap.shape[1])](fmap).mean(dim=(2, 3))  # (B, width)

    def forward(self, x: torch.Tensor, path: Sequence[str]) -> torch.Tensor:
        return self.forward_features(x, path)


def supports_start(supernet: nn.Module) -> bool:
    """Whether `supernet.forward_blocks` can resume from a block's output (`start=`)."""
    forward_blocks = getattr(supernet, "forward_blocks", None)
    return forward_blocks is not None and "start" in inspect.signature(forward_blocks).parameters


# ---------------------------------------------------------------- population-centre rating


class _Online(nn.Module):
    """`pred(neck(stage(x, path)))` as one module, so BN recalibration reaches each of its BNs."""

    def __init__(self, stage: nn.Module, objective: EnsembleBootstrap) -> None:
        super().__init__()
        assert objective.projector is not None and objective.predictor is not None
        self.stage, self.projector, self.predictor = stage, objective.projector, objective.predictor

    def forward(self, x: torch.Tensor, path: BlockPath) -> torch.Tensor:
        return self.predictor(self.projector(forward_features_of(self.stage, x, path=path)))


class _Target(nn.Module):
    def __init__(self, objective: EnsembleBootstrap) -> None:
        super().__init__()
        assert objective.target_model is not None and objective.target_projector is not None
        self.model, self.projector = objective.target_model, objective.target_projector

    def forward(self, x: torch.Tensor, path: BlockPath) -> torch.Tensor:
        return self.projector(forward_features_of(self.model, x, path=path))


@contextmanager
def preserved_batch_norm(module: nn.Module) -> Iterator[None]:
    """Restore every BN's statistics, momentum, tracking flag and the train/eval modes on exit."""
    norms = batch_norms(module)
    saved = [
        (bn.track_running_stats, bn.momentum,
         {k: getattr(bn, k).clone() if getattr(bn, k) is not None else None
          for k in ("running_mean", "running_var", "num_batches_tracked")})
        for bn in norms
    ]  # fmt: skip
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for bn, (tracking, momentum, buffers) in zip(norms, saved):
            bn.track_running_stats, bn.momentum = tracking, momentum
            for name, value in buffers.items():
                bn.register_buffer(name, value)
        for m, training in modes:
            m.training = training


@dataclass(frozen=True)
class RatingData:
    """What every candidate is rated on (identical for all, so scores differ only by path).

    recalibration: (R,3,H,W) float training images for BN re-estimation.
    pairs: validation batches, each (v1, v2) of (B,3,H,W) float views.
    """

    recalibration: torch.Tensor
    pairs: list[tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def rate_paths(
    stage: BlockStage,
    objective: EnsembleBootstrap,
    paths: Sequence[BlockPath],
    data: RatingData,
    signals: Sequence[str] = (),
    precision: Any = None,
) -> dict[BlockPath, dict[str, float]]:
    """BossNAS's population-centre rating of block paths (Li et al., ICCV 2021; changlin31/BossNAS hooks/val_hook.py).

    For each path j (BN statistics re-estimated on `data.recalibration`, then eval mode):
    online predictions o_j(v) and raw target projections t_j(v) on every validation pair;
    centre C(v) = mean_j t_j(v); `loss_j = mean_b head(o_j(v1), C(v2)) + head(o_j(v2), C(v1))`
    with `head = -2 cos` (lower = better). Also, per path:

    * `centre-distance`: `mean_b -2cos(t_j(v1), C(v1)) - 2cos(t_j(v2), C(v2))`, how close the
      candidate's own target embedding lies to the centre (a label-free alternative);
    * each name in `signals` (`ssnas.rating.SIGNALS`, e.g. "meco", "naswot") on the stage
      network in eval mode (the candidate's recalibrated BN statistics), on `data.recalibration`.

    The supernet, heads and BN statistics are left as they were.
    """
    online, target = _Online(stage, objective), _Target(objective)
    autocast = precision.autocast if precision is not None else nullcontext
    predictions: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    projections: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    extra: list[dict[str, float]] = []
    with preserved_batch_norm(online), preserved_batch_norm(target):
        for path in track(paths, "BossNAS rating", len(paths), "block paths"):
            fault_point("rate")  # tests only
            with autocast():
                recalibrate_bn(online, data.recalibration, path=path)
                recalibrate_bn(target, data.recalibration, path=path)
                predictions.append([(online(v1, path).float(), online(v2, path).float()) for v1, v2 in data.pairs])
                projections.append([(target(v1, path).float(), target(v2, path).float()) for v1, v2 in data.pairs])
            with torch.enable_grad():  # eval mode: the candidate's recalibrated BN statistics
                values = network_signals(stage, list(signals), data.recalibration, batch_statistics=False, path=path)
            extra.append({name: value for name, (value, _seconds) in values.items()})
    num_batches = len(data.pairs)
    centres = [
        tuple(torch.stack([p[b][v] for p in projections]).mean(dim=0) for v in (0, 1))  # (n, B, D) -> (B, D)
        for b in range(num_batches)
    ]
    results: dict[BlockPath, dict[str, float]] = {}
    for j, path in enumerate(paths):
        loss = distance = 0.0
        for b, (c1, c2) in enumerate(centres):
            (o1, o2), (t1, t2) = predictions[j][b], projections[j][b]
            loss += float(cosine_head(o1, c2) + cosine_head(o2, c1))
            distance += float(cosine_head(t1, c1) + cosine_head(t2, c2))
        results[path] = {"loss": loss / num_batches, "centre-distance": distance / num_batches, **extra[j]}
    return results


# ---------------------------------------------------------------- the strategy


@dataclass(frozen=True)
class BossConfig:
    """BossNAS settings (paper values in comments; defaults are the paper's where it fits a GPU).

    paths_per_step: p; None = one per option with fair sampling (NATS 8, MBConv 4), else 4.
    shared_views: one view pair for all p paths (BossNAS on NATS) instead of one pair per path.
    neck_width / hidden_dim / out_dim / pred_hidden_dim: adapter 2048, neck 4096 -> 256, predictor 4096.
    population: block candidates (seeded sample) forming the centre besides the paths a `rate`
        call needs; None = every candidate (the paper).
    rating_batches x rating_batch_size: held-out validation views; recal_batch_size: training
        images for BN re-estimation.
    signals: extra label-free columns computed per path (`ssnas.rating.SIGNALS` names).
    supernet: keyword arguments of `build_block_supernet` (or NB201's `build_supernet`).
    cache_prefix: during block training, run the frozen earlier blocks once per view batch
        (`PrefixCache`) rather than once per sampled path.
    """

    paths_per_step: int | None = None
    shared_views: bool = False
    neck_width: int = 2048
    hidden_dim: int = 4096
    out_dim: int = 256
    pred_hidden_dim: int = 4096
    base_momentum: float = 0.99
    population: int | None = None
    rating_batches: int = 4
    rating_batch_size: int = 256
    recal_batch_size: int = 256
    signals: tuple[str, ...] = ()
    supernet: dict[str, Any] = field(default_factory=dict)
    cache_prefix: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals", tuple(self.signals))
        unknown = [s for s in self.signals if s not in SIGNALS.names()]
        if unknown:
            raise UserError(f"unknown signal(s) {unknown}; choose from: {', '.join(SIGNALS.names())}")


@dataclass
class BlockRecord:
    """One block stage: its candidates, the rated paths' values, the path kept, the training."""

    candidates: list[BlockPath]
    ratings: dict[BlockPath, dict[str, float]]
    best: BlockPath
    result: TrainResult | None


@dataclass
class BlockwiseRun:
    records: list[BlockRecord]
    stages: list[BlockStage]
    objectives: list[EnsembleBootstrap]

    @property
    def paths(self) -> list[BlockPath]:
        return [r.best for r in self.records]


@STRATEGIES.register("bossnas")
class BossNAS:
    """Block-wise ensemble bootstrapping and population-centre rating (the task's objective and
    epochs are per block; `task.objective` is ignored: BossNAS always trains "ensemble-byol")."""

    def __init__(self, config: BossConfig | None = None, **overrides: Any) -> None:
        self.config = BossConfig(**{**asdict(config or BossConfig()), **overrides})

    # -- pieces

    def rating_data(self, task: SearchTask, pair_views: ViewMaker, device: torch.device) -> RatingData:
        """A seeded fixed training batch and seeded held-out view pairs."""
        cfg = self.config
        generator = torch.Generator().manual_seed(task.seed + 5)
        order = torch.randperm(task.images.shape[0], generator=generator)[: cfg.recal_batch_size]
        view_gen = torch.Generator(device=device).manual_seed(task.seed + 6)
        recal = pair_views(task.images[order].to(device), view_gen)[0]
        held = torch.randperm(task.holdout_images.shape[0], generator=generator)
        size = min(cfg.rating_batch_size, held.shape[0])
        pairs = []
        for b in range(max(1, min(cfg.rating_batches, held.shape[0] // size))):
            v1, v2 = pair_views(task.holdout_images[held[b * size : (b + 1) * size]].to(device), view_gen)[:2]
            pairs.append((v1, v2))
        return RatingData(recal, pairs)

    def _population(self, k: int, candidates: list[BlockPath], needed: Sequence[BlockPath], seed: int) -> list[BlockPath]:
        allowed = set(candidates)
        missing = [p for p in needed if p not in allowed]
        if missing:
            raise UserError(f"block {k} path {':'.join(missing[0])} is not a candidate after the greedy "
                            f"choice of the earlier blocks; additive rating needs block-independent candidates")  # fmt: skip
        chosen: dict[BlockPath, None] = dict.fromkeys(needed)
        if self.config.population is None:
            chosen.update(dict.fromkeys(candidates))
        else:
            order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed * 7919 + k))
            chosen.update(dict.fromkeys(candidates[int(i)] for i in order[: self.config.population]))
        if not chosen:
            raise UserError("BossNAS population is empty: set population > 0 or rate some architectures")
        return list(chosen)

    def run_blocks(self, task: SearchTask, needed: Sequence[Sequence[BlockPath]] | None = None) -> BlockwiseRun:
        """Train and rate block by block; `needed[k]` are paths that must be rated in block k."""
        cfg = self.config
        space = as_block_space(task.space)
        blocks = space.blocks()
        with seeded(task.seed):
            supernet = space.build_block_supernet(**cfg.supernet)
        device = resolve_device(task.train.device)
        precision = resolve_precision(task.train.precision, device, BF16_KEEPS_QUALITY)
        pair_views = VIEWS.create(task.views or EnsembleBootstrap.view_recipe)
        data = self.rating_data(task, pair_views, device)
        records: list[BlockRecord] = []
        stages: list[BlockStage] = []
        objectives: list[EnsembleBootstrap] = []
        fixed: list[BlockPath] = []
        for k in range(len(blocks)):
            candidates = space.block_paths(k, fixed)
            population = self._population(k, candidates, needed[k] if needed else (), task.seed)
            if task.budget is not None and k == len(blocks) - 1:  # the last block completes the architecture
                population = self._within_budget(task, fixed, population, needed[k] if needed else ())
            count, fair = default_sampling(candidates, cfg.paths_per_step)
            supernet.to(device)
            with seeded(task.seed * 1000 + k):  # the adapters' initialisation, reproducible
                stage = BlockStage(supernet, fixed, candidates, cfg.neck_width, data.recalibration[:2])
            objective = create_objective(
                "ensemble-byol", hidden_dim=cfg.hidden_dim, out_dim=cfg.out_dim,
                pred_hidden_dim=cfg.pred_hidden_dim, base_momentum=cfg.base_momentum,
            )  # fmt: skip
            assert isinstance(objective, EnsembleBootstrap)
            train_views: ViewMaker = pair_views
            if not cfg.shared_views and count > 1:
                if not isinstance(pair_views, MultiView) or pair_views.num_views != 2:
                    raise UserError("one view pair per path needs a two-view MultiView recipe; set shared_views")
                train_views = MultiView(pair_views.pipelines * count, pair_views.mean, pair_views.std)
            stage_dir = task.out_dir / f"block{k}" if task.out_dir is not None else None
            log.info("BossNAS block %d: %d candidates, %d paths per step (%s)", k, len(candidates), count,
                     "fair" if fair else "uniform")  # fmt: skip
            stage.cache = PrefixCache() if cfg.cache_prefix and fixed and supports_start(supernet) else None
            result = train(
                stage, objective, task.images, train_views,
                replace(task.train, seed=task.train.seed + k, precision=precision.name),
                out_dir=stage_dir, resume=task.resume, hooks=PathSampler(candidates, count, fair),
            )  # fmt: skip
            for module in (stage, objective.target_model):  # the target is a copy made by `train`
                if isinstance(module, BlockStage):
                    module.cache = None
            ratings = self._rate_block(stage, objective, population, data, precision, stage_dir)
            best = min(population, key=lambda p: ratings[p]["loss"])
            log.info("BossNAS block %d: best path %s (loss %.4f)", k, ":".join(best), ratings[best]["loss"])
            records.append(BlockRecord(candidates, ratings, best, result))
            stages.append(stage)
            objectives.append(objective)
            fixed.append(best)
        return BlockwiseRun(records, stages, objectives)

    @staticmethod
    def _within_budget(task: SearchTask, fixed: Sequence[BlockPath], population: list[BlockPath],
                       needed: Sequence[BlockPath]) -> list[BlockPath]:  # fmt: skip
        """The last block's paths whose whole architecture meets the budget (and the `needed` ones)."""
        assert task.budget is not None
        kept = [p for p in population if p in needed or task.budget.admits(task.space.make([o for q in (*fixed, p) for o in q]))]
        if not kept:
            raise UserError("BossNAS: no path of the last block fits the budget after the earlier blocks' choices; "
                            "relax the budget")  # fmt: skip
        return kept

    def _rate_block(
        self, stage: BlockStage, objective: EnsembleBootstrap, population: list[BlockPath], data: RatingData,
        precision: Any, stage_dir: Path | None,
    ) -> dict[BlockPath, dict[str, float]]:  # fmt: skip
        """`rate_paths`, reusing `stage_dir/rating.json` when it holds this very population."""
        saved = stage_dir / "rating.json" if stage_dir is not None else None
        settings = {"signals": list(self.config.signals), "population": [list(p) for p in population]}
        if saved is not None and saved.exists():
            payload = read_json(saved)
            if not isinstance(payload, dict) or "settings" not in payload or "values" not in payload:
                raise corrupt(saved, "not a block rating")
            if payload["settings"] == settings:
                return {tuple(p): v for p, v in zip(payload["settings"]["population"], payload["values"])}
        ratings = rate_paths(stage, objective, population, data, self.config.signals, precision)
        if saved is not None and is_main_process():
            saved.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(saved, json.dumps({"settings": settings, "values": [ratings[p] for p in population]}))
        return ratings

    # -- Strategy / SupportsRating

    def search(self, task: SearchTask) -> SearchResult:
        """Greedy block-wise search; candidates = the last block's rated paths on the chosen prefix."""
        run = self.run_blocks(task)
        prefix = run.paths[:-1]
        prefix_loss = sum(r.ratings[r.best]["loss"] for r in run.records[:-1])
        last = run.records[-1]
        scored = [
            ScoredArch(
                task.space.make([o for p in (*prefix, path) for o in p]),
                -(prefix_loss + values["loss"]),
                {f"block{k}": run.records[k].ratings[p]["loss"] for k, p in enumerate((*prefix, path))},
            )
            for path, values in last.ratings.items()
        ]
        ranked = sorted(scored, key=lambda s: s.score, reverse=True)
        info = {
            "block_paths": [":".join(p) for p in run.paths],
            "train_history": [r.result.history if r.result else [] for r in run.records],
            "train_seconds": sum(r.result.seconds for r in run.records if r.result),
            "rated_per_block": [len(r.ratings) for r in run.records],
        }
        return SearchResult(best=ranked[0], candidates=ranked, info=info)

    def rate(self, task: SearchTask, archs: Sequence[Architecture]) -> list[ScoredArch]:
        """Additive rating: `score = -sum_k loss_k(path_k)`; details hold each block's loss
        (`block{k}`), the summed `centre-distance` and signals, and the sums' negatives."""
        blocks = as_block_space(task.space).blocks()
        split = [split_paths(blocks, a) for a in archs]
        needed = [list(dict.fromkeys(s[k] for s in split)) for k in range(len(blocks))]
        run = self.run_blocks(task, needed)
        return [additive_score(arch, paths, [r.ratings for r in run.records]) for arch, paths in zip(archs, split)]


def additive_score(
    arch: Architecture, paths: Sequence[BlockPath], ratings: Sequence[Mapping[BlockPath, Mapping[str, float]]]
) -> ScoredArch:
    """`-sum_k loss_k(path_k)`; every other column summed over blocks too."""
    details: dict[str, float] = {}
    for k, path in enumerate(paths):
        values = ratings[k][path]
        details[f"block{k}"] = values["loss"]
        for name, value in values.items():
            details[name] = details.get(name, 0.0) + value
    return ScoredArch(arch, -details["loss"], details)


# BossNAS's heads on the quick preset (the paper's 2048 / 4096 / 4096 are for a GPU).
BOSSNAS_QUICK_HEADS = dict(neck_width=512, hidden_dim=1024, pred_hidden_dim=1024)
SHARED_VIEW_SPACES = ("nb201", "nats-size")  # BossNAS on CIFAR / NATS: one crop-flip view pair shared by the p paths


@settings_for("bossnas")
@dataclass(frozen=True)
class BossnasSettings(Training):
    """BossNAS: block-wise ensemble bootstrapping (`BossConfig`); always trains "ensemble-byol".

    select_num: on nb201 (one block of 15,284 cells), the seeded sample of cells rated.
    channels / cells: the nb201 supernet's C and N.
    """

    bf16_keeps_quality: ClassVar[bool] = BF16_KEEPS_QUALITY

    select_num: int | None = None
    channels: int | None = None
    cells: int | None = None

    def options(self, space: str) -> tuple[str, ...]:
        return (*TRAINING, *(("select_num", *NETWORK) if space in SUPERNET_SIZED else ()))

    def resolve(self, space: str, preset: str) -> BossnasSettings:
        return fill(self, self.options(space), PRESETS[preset])

    def create(self, name: str, space: str, preset: str) -> Strategy:
        settings: dict[str, Any] = dict(BOSSNAS_QUICK_HEADS) if preset == "quick" else {}
        if space in SHARED_VIEW_SPACES:
            settings["shared_views"] = True
        if space in SUPERNET_SIZED:  # one block of 15,284 cells: rate a seeded sample of them
            settings.update(population=self.select_num, supernet=supernet_size(self.channels, self.cells))
        return BossNAS(BossConfig(**settings))

    def scored_by(self) -> str:
        return "ensemble bootstrapping (BossNAS's population-centre rating)"

    def image_floor(self, space: str) -> ImageFloor:
        return ImageFloor(*SUPERNET_FLOOR)

    def views(self, space: str) -> str | None:
        return "crop-flip" if space in SHARED_VIEW_SPACES else None  # BossNAS's CIFAR / NATS setting (Li et al., ICCV 2021)

    def for_rating(self) -> BossnasSettings:
        return replace(self, select_num=0)  # the centre of the given cells only, no sampled population


__all__ = [
    "BOSSNAS_QUICK_HEADS",
    "BlockStage",
    "BossConfig",
    "BossNAS",
    "BossnasSettings",
    "PathSampler",
    "PrefixCache",
    "PooledSupernet",
    "RatingData",
    "WholeNetworkBlock",
    "additive_score",
    "as_block_space",
    "fair_paths",
    "rate_paths",
]

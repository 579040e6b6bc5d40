"""NAS-Bench-201 topology space (Dong & Yang, "NAS-Bench-201", ICLR 2020).

A cell is a DAG of 4 nodes (0 = input, 3 = output) with 6 edges j <- i (i < j); each edge
takes one of 5 ops, so there are 5**6 = 15,625 cells. A node is the sum of its incoming
edges. The network (xautodl `TinyNetwork`): 3x3 conv stem + BN with C channels, three
stages of N cells with C, 2C, 4C channels separated by a stride-2 ResNet basic block,
then BN-ReLU, global average pooling (features (B, 4C)) and a linear classifier.

The architecture key is the benchmark's own string, e.g.
`|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|`.
`enumerate()` walks the 6 edges as a product (last edge fastest); this is NOT the
benchmark's index order, which is a fixed permutation stored with the benchmark: use
`BenchmarkTable.index_of(key)` (ssnas.groundtruth) for the benchmark index.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import cast

import torch
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces import SPACES
from ssnas.spaces.base import Architecture
from ssnas.spaces.cost import count_macs, count_parameters
from ssnas.spaces.ops import OPS, ReLUConvBN, ResNetBasicBlock

OP_NAMES: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
NUM_NODES = 4
# (to, from) per edge, in the benchmark string's order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
DECISIONS: tuple[str, ...] = tuple(f"edge_{to}_{src}" for to, src in EDGES)
# For each node 1..3: its incoming (edge index, source node) pairs.
_NODE_INPUTS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((e, src) for e, (t, src) in enumerate(EDGES) if t == to) for to in range(1, NUM_NODES)
)
# For each source node 0..2: its outgoing (edge index, target node) pairs.
_NODE_OUTPUTS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((e, to) for e, (to, s) in enumerate(EDGES) if s == src) for src in range(NUM_NODES - 1)
)
_OP_INDEX = {op: i for i, op in enumerate(OP_NAMES)}
_NONE, _SKIP, _CONV1, _CONV3, _POOL = (_OP_INDEX[op] for op in OP_NAMES)

EdgeFn = Callable[[int, torch.Tensor], torch.Tensor]


def _run_dag(x: torch.Tensor, edge: EdgeFn) -> torch.Tensor:
    """Node j = sum over edges j <- i of edge(e, node_i); returns the last node."""
    nodes = [x]
    for inputs in _NODE_INPUTS:
        out = edge(inputs[0][0], nodes[inputs[0][1]])
        for e, src in inputs[1:]:
            out = out + edge(e, nodes[src])
        nodes.append(out)
    return nodes[-1]


def _make_op(op: str, C: int, affine: bool, track_running_stats: bool) -> nn.Module:
    return OPS.create(
        op, C_in=C, C_out=C, stride=1, affine=affine, track_running_stats=track_running_stats
    )


def _conv_bn(op: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """The conv and BN of a conv edge op (a ReLUConvBN: ReLU, Conv2d, BatchNorm2d)."""
    layers = cast(ReLUConvBN, op).op
    return cast(nn.Conv2d, layers[1]), cast(nn.BatchNorm2d, layers[2])


class NB201Cell(nn.Module):
    """A fixed cell: one op per edge. (B,C,H,W) -> (B,C,H,W)."""

    def __init__(
        self, ops: Sequence[str], C: int, affine: bool = True, track_running_stats: bool = True
    ) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_make_op(op, C, affine, track_running_stats) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run_dag(x, lambda e, h: self.edges[e](h))


def _avg_pool_3x3(h: torch.Tensor) -> torch.Tensor:
    """`avg_pool2d(h, 3, 1, 1, count_include_pad=False)` as a depthwise box filter times the
    inverse window count (measured 2-3x faster forward + backward on an AVX2 CPU). (B,C,H,W)."""
    C, H, W = h.shape[1:]
    box = torch.ones(C, 1, 3, 3, dtype=h.dtype, device=h.device)
    count = nn.functional.conv2d(h.new_ones(1, 1, H, W), box[:1], padding=1)  # (1, 1, H, W): 4, 6 or 9
    return nn.functional.conv2d(h, box, padding=1, groups=C) / count


class NB201MixedCell(nn.Module):
    """A weight-sharing cell: every edge holds all 5 ops. (B,C,H,W) -> (B,C,H,W).

    `op_index` (6 ints) runs one op per edge; `op_weights` (6, 5) sums all ops per edge,
    weighted (first-order DARTS / SETN joint step): `weighted_sum` is that definition.

    While the cell ops' BNs normalise by batch statistics only (no affine parameters, no
    running buffers: the search-time default), both calls take a fused route with the same
    result: per source node one ReLU, one conv per kind (1x1, 3x3) for all its outgoing edges
    (their weights concatenated, so one BN over the stacked channels equals the per-edge BNs,
    with the op weight folded into the BN scale), one 3x3 pooling (a box filter); a `none` edge is a zero
    term (`h * 0` on a path, dropped from the mixture, where it adds exactly nothing).
    """

    def __init__(self, C: int, affine: bool = False, track_running_stats: bool = False) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(_make_op(op, C, affine, track_running_stats) for op in OP_NAMES)
            for _ in EDGES
        )

    def edge_ops(self, e: int) -> nn.ModuleList:
        """Edge e's ops, in `OP_NAMES` order."""
        return cast(nn.ModuleList, self.edges[e])

    def forward(
        self,
        x: torch.Tensor,
        op_index: Sequence[int] | None = None,
        op_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        norms = [_conv_bn(self.edge_ops(e)[k])[1] for e in range(len(EDGES)) for k in (_CONV1, _CONV3)]
        fused = all(bn.weight is None and bn.running_mean is None for bn in norms)
        if op_weights is not None:
            if not fused:
                return self.weighted_sum(x, op_weights)
            return self._fused(x, [range(1, len(OP_NAMES))] * len(EDGES), op_weights)
        assert op_index is not None
        index = op_index
        if not fused:
            return _run_dag(x, lambda e, h: self.edge_ops(e)[index[e]](h))
        return self._fused(x, [(k,) for k in index], None)

    def weighted_sum(self, x: torch.Tensor, op_weights: torch.Tensor) -> torch.Tensor:
        """Node j = sum over edges e into j, over all ops k, of op_weights[e, k] * op_k(node_i)."""

        def edge(e: int, h: torch.Tensor) -> torch.Tensor:
            ops = self.edge_ops(e)
            out = op_weights[e, 0] * ops[0](h)
            for k in range(1, len(OP_NAMES)):
                out = out + op_weights[e, k] * ops[k](h)
            return out

        return _run_dag(x, edge)

    def _fused(
        self, x: torch.Tensor, chosen: Sequence[Sequence[int]], weights: torch.Tensor | None
    ) -> torch.Tensor:
        """The DAG with op indices `chosen[e]` on edge e, weighted by `weights` (6, 5) (None: 1)."""
        C = x.shape[1]
        nodes: list[torch.Tensor | None] = [x] + [None] * (NUM_NODES - 1)

        def add(to: int, term: torch.Tensor, weight: torch.Tensor | None = None) -> None:
            node = nodes[to]
            if weight is None:
                nodes[to] = term if node is None else node + term
            else:
                nodes[to] = term * weight if node is None else node.addcmul(term, weight)

        for src, outputs in enumerate(_NODE_OUTPUTS):
            h = nodes[src]
            assert h is not None  # every node has an incoming edge, and `none` adds h * 0
            relu: torch.Tensor | None = None
            for k in (_CONV1, _CONV3):
                edges = [(e, to) for e, to in outputs if k in chosen[e]]
                if not edges:
                    continue
                relu = torch.relu(h) if relu is None else relu
                convs = [_conv_bn(self.edge_ops(e)[k])[0] for e, _ in edges]
                kernel = convs[0].weight if len(convs) == 1 else torch.cat([c.weight for c in convs])
                y = nn.functional.conv2d(relu, kernel, padding=convs[0].padding)  # (B, len(edges) * C, H, W)
                scale = None
                if weights is not None:
                    scale = weights[[e for e, _ in edges], k].repeat_interleave(C)  # (len(edges) * C,)
                eps = _conv_bn(self.edge_ops(edges[0][0])[k])[1].eps
                y = nn.functional.batch_norm(y, None, None, scale, None, True, 0.0, eps)  # (B, len(edges) * C, H, W)
                for (_, to), part in zip(edges, y.split(C, dim=1)):  # one (B, C, H, W) per edge
                    add(to, part)
            pool_edges = [(e, to) for e, to in outputs if _POOL in chosen[e]]
            if pool_edges:
                pooled = _avg_pool_3x3(h)
                for e, to in pool_edges:
                    add(to, pooled, None if weights is None else weights[e, _POOL])
            for e, to in outputs:
                if _SKIP in chosen[e]:
                    add(to, h, None if weights is None else weights[e, _SKIP])
                if _NONE in chosen[e]:
                    add(to, h.mul(0.0))  # zero, yet h's ops get (zero) gradients as with `Zero`
        out = nodes[-1]
        assert out is not None
        return out


class _TinyNetwork(nn.Module):
    """The NB201 macro skeleton around cells built by `make_cell(C_stage)`.

    Only the cell ops take `affine`/`track_running_stats`; the stem, the ResNet blocks and
    the last BN always use affine BN with running statistics (xautodl's search networks).
    """

    def __init__(
        self, make_cell: Callable[[int], nn.Module], C: int, N: int, num_classes: int | None
    ) -> None:
        super().__init__()
        self.C, self.N, self.num_classes = C, N, num_classes
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        is_cell: list[bool] = []
        C_prev = C
        for stage, C_stage in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(C_prev, C_stage, stride=2))
                is_cell.append(False)
            for _ in range(N):
                layers.append(make_cell(C_stage))
                is_cell.append(True)
            C_prev = C_stage
        self.layers = nn.ModuleList(layers)
        self.is_cell = tuple(is_cell)
        self.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU(inplace=False))
        self.feature_dim = C_prev
        self.classifier: nn.Module = (
            nn.Linear(C_prev, num_classes) if num_classes is not None else nn.Identity()
        )

    def feature_layers(self) -> list[nn.Module]:
        """Stem, cells and reduction blocks, input to output (for layer-wise proxies)."""
        return [self.stem, *self.layers]

    def _features(self, x: torch.Tensor, **cell_kwargs: object) -> torch.Tensor:
        x = self.stem(x)  # (B, C, H, W)
        for layer, is_cell in zip(self.layers, self.is_cell):
            x = layer(x, **cell_kwargs) if is_cell else layer(x)
        x = self.lastact(x)  # (B, 4C, H/4, W/4)
        return x.mean(dim=(2, 3))  # (B, 4C)


class NB201Network(_TinyNetwork):
    """The benchmark's standalone network for one cell. (B,3,H,W) -> (B,4C) / logits."""

    def __init__(
        self,
        ops: Sequence[str],
        C: int = 16,
        N: int = 5,
        num_classes: int | None = None,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        self.ops = tuple(ops)
        super().__init__(
            lambda C_stage: NB201Cell(self.ops, C_stage, affine, track_running_stats),
            C,
            N,
            num_classes,
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes); features (B, 4C) when built without classes."""
        return self.classifier(self.forward_features(x))


class NB201Supernet(_TinyNetwork):
    """Weight-sharing template network (SETN, Dong & Yang ICCV 2019; DARTS).

    `forward_features(x, arch=a)` runs only a's op on each edge; `forward_features(x,
    op_weights=w)` with w of shape (6, 5) (rows: edges in `DECISIONS` order, columns:
    `OP_NAMES`) returns the w-weighted sum of all ops per edge.
    """

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int | None = None,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> None:
        self.affine, self.track_running_stats = affine, track_running_stats
        super().__init__(
            lambda C_stage: NB201MixedCell(C_stage, affine, track_running_stats),
            C,
            N,
            num_classes,
        )

    def forward_features(
        self,
        x: torch.Tensor,
        arch: Architecture | None = None,
        op_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if (arch is None) == (op_weights is None):
            raise ValueError("pass exactly one of `arch` and `op_weights`")
        if op_weights is not None:
            if tuple(op_weights.shape) != (len(EDGES), len(OP_NAMES)):
                raise ValueError(
                    f"op_weights must have shape ({len(EDGES)}, {len(OP_NAMES)}), "
                    f"got {tuple(op_weights.shape)}"
                )
            return self._features(x, op_weights=op_weights)
        assert arch is not None
        return self._features(x, op_index=op_indices(arch))

    def forward(
        self,
        x: torch.Tensor,
        arch: Architecture | None = None,
        op_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.classifier(self.forward_features(x, arch=arch, op_weights=op_weights))


def op_indices(arch: Architecture) -> tuple[int, ...]:
    """The op index (into `OP_NAMES`) of each edge, in `DECISIONS` order."""
    if arch.space != "nb201":
        raise UserError(f"architecture {arch.key!r} belongs to space {arch.space!r}, not nb201")
    try:
        return tuple(_OP_INDEX[op] for op in arch.choices)
    except KeyError as err:
        raise UserError(f"unknown NB201 op {err.args[0]!r}; valid ops: {', '.join(OP_NAMES)}")


def format_choices(choices: Sequence[str]) -> str:
    """The benchmark string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` of 6 edge ops."""
    nodes = []
    for inputs in _NODE_INPUTS:
        nodes.append("|" + "|".join(f"{choices[e]}~{src}" for e, src in inputs) + "|")
    return "+".join(nodes)


# The counts below build throwaway modules; their initialisation must not draw from the caller's
# global random state (fork_rng puts it back), or the first cost query of a process would move it.


@lru_cache(maxsize=None)
def _op_params(op: str, C: int) -> int:
    with torch.random.fork_rng(devices=[]):
        return count_parameters(_make_op(op, C, affine=True, track_running_stats=True))


@lru_cache(maxsize=None)
def _skeleton_params(C: int, N: int, num_classes: int | None) -> int:
    with torch.random.fork_rng(devices=[]):
        return count_parameters(NB201Network(["none"] * len(EDGES), C, N, num_classes))


@lru_cache(maxsize=None)
def _op_macs(op: str, C: int, resolution: int) -> int:
    with torch.random.fork_rng(devices=[]):
        module = _make_op(op, C, affine=True, track_running_stats=True)
    return count_macs(module, torch.zeros(1, C, resolution, resolution))


@lru_cache(maxsize=None)
def _skeleton_macs(C: int, N: int, num_classes: int | None, resolution: int) -> int:
    with torch.random.fork_rng(devices=[]):
        network = NB201Network(["none"] * len(EDGES), C, N, num_classes)
    return count_macs(network, torch.zeros(1, 3, resolution, resolution))


@SPACES.register("nb201")
class NB201Space:
    """NAS-Bench-201: 6 edges x 5 ops; networks with C stem channels and N cells per stage.

    Implements SearchSpace, SupportsEnumerate, SupportsMutate and SupportsSupernet.
    """

    name = "nb201"
    ops = OP_NAMES
    edges = EDGES

    def __init__(self, C: int = 16, N: int = 5) -> None:
        if C < 1 or N < 1 or C % 2:
            raise UserError(f"nb201 needs an even C >= 2 and N >= 1, got C={C}, N={N}")
        self.C, self.N = C, N

    # -- encoding -------------------------------------------------------------------------

    def choices(self) -> dict[str, tuple[str, ...]]:
        return {name: OP_NAMES for name in DECISIONS}

    def make(self, choices: Sequence[str]) -> Architecture:
        choices = tuple(choices)
        if len(choices) != len(EDGES):
            raise UserError(f"nb201 needs {len(EDGES)} edge ops, got {len(choices)}")
        for op in choices:
            if op not in _OP_INDEX:
                raise UserError(f"unknown NB201 op {op!r}; valid ops: {', '.join(OP_NAMES)}")
        return Architecture(self.name, choices, format_choices(choices))

    def format(self, arch: Architecture) -> str:
        op_indices(arch)
        return format_choices(arch.choices)

    def parse(self, text: str) -> Architecture:
        """Parse the benchmark string; UserError naming what is wrong."""
        if not isinstance(text, str):
            raise UserError(f"bad NB201 architecture {text!r}: expected a string")
        shown = text if len(text) <= 120 else f"{text[:117]}..."  # a huge text is not echoed whole
        prefix = f"bad NB201 architecture {shown!r}"
        nodes = text.strip().split("+")
        if len(nodes) != NUM_NODES - 1:
            raise UserError(
                f"{prefix}: expected {NUM_NODES - 1} nodes separated by '+', got {len(nodes)}"
            )
        choices: list[str] = []
        for to, node in enumerate(nodes, start=1):
            if len(node) < 2 or node[0] != "|" or node[-1] != "|":
                raise UserError(f"{prefix}: node {to} {node!r} must look like '|op~src|...|'")
            entries = node[1:-1].split("|")
            if len(entries) != to:
                raise UserError(
                    f"{prefix}: node {to} must have {to} incoming edges, got {len(entries)}"
                )
            for src, entry in enumerate(entries):
                op, sep, source = entry.partition("~")
                if not sep:
                    raise UserError(f"{prefix}: edge {entry!r} must look like 'op~src'")
                if op not in _OP_INDEX:
                    raise UserError(
                        f"{prefix}: unknown op {op!r}; valid ops: {', '.join(OP_NAMES)}"
                    )
                if source != str(src):
                    raise UserError(
                        f"{prefix}: edge {entry!r} of node {to} must come from node {src} "
                        f"(sources are listed in order 0..{to - 1})"
                    )
                choices.append(op)
        return self.make(choices)

    def op_indices(self, arch: Architecture) -> tuple[int, ...]:
        return op_indices(arch)

    # -- sampling and enumeration ---------------------------------------------------------

    def sample(self, rng: random.Random) -> Architecture:
        return self.make([rng.choice(OP_NAMES) for _ in EDGES])

    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture:
        """Change one uniformly chosen edge to a different op."""
        op_indices(arch)
        choices = list(arch.choices)
        edge = rng.randrange(len(EDGES))
        choices[edge] = rng.choice([op for op in OP_NAMES if op != choices[edge]])
        return self.make(choices)

    def enumerate(self) -> Iterator[Architecture]:
        """All 15,625 cells, edges in `DECISIONS` order as a product (last edge fastest)."""
        for choices in itertools.product(OP_NAMES, repeat=len(EDGES)):
            yield self.make(choices)

    def size(self) -> int:
        return len(OP_NAMES) ** len(EDGES)

    def is_degenerate(self, arch: Architecture) -> bool:
        """True when no path of non-`none` edges joins the input to the output node."""
        op_indices(arch)
        reached = {0}
        for to, inputs in enumerate(_NODE_INPUTS, start=1):
            if any(src in reached and arch.choices[e] != "none" for e, src in inputs):
                reached.add(to)
        return NUM_NODES - 1 not in reached

    # -- networks -------------------------------------------------------------------------

    def build(
        self,
        arch: Architecture,
        num_classes: int | None = None,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> NB201Network:
        """The benchmark's training network for `arch` (xautodl `TinyNetwork`)."""
        op_indices(arch)
        return NB201Network(arch.choices, self.C, self.N, num_classes, affine, track_running_stats)

    def build_supernet(
        self,
        C: int | None = None,
        N: int | None = None,
        num_classes: int | None = None,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> NB201Supernet:
        """Weight-sharing network; BN in the cells uses batch statistics by default."""
        return NB201Supernet(
            self.C if C is None else C,
            self.N if N is None else N,
            num_classes,
            affine,
            track_running_stats,
        )

    def extract_subnet(self, supernet: NB201Supernet, arch: Architecture) -> NB201Network:
        """A standalone network holding copies of `arch`'s path through `supernet`.

        Same structure as `build(arch, ...)` with the supernet's C, N, classes and BN flags;
        its output equals `supernet(x, arch=arch)` in train and eval mode.
        """
        index = op_indices(arch)
        net = NB201Network(
            arch.choices,
            supernet.C,
            supernet.N,
            supernet.num_classes,
            supernet.affine,
            supernet.track_running_stats,
        )
        net.stem = copy.deepcopy(supernet.stem)
        net.lastact = copy.deepcopy(supernet.lastact)
        net.classifier = copy.deepcopy(supernet.classifier)
        for i, (layer, is_cell) in enumerate(zip(supernet.layers, supernet.is_cell)):
            if not is_cell:
                net.layers[i] = copy.deepcopy(layer)
                continue
            cell = net.layers[i]
            assert isinstance(cell, NB201Cell) and isinstance(layer, NB201MixedCell)
            for e, k in enumerate(index):
                cell.edges[e] = copy.deepcopy(layer.edge_ops(e)[k])
        return net.train(supernet.training)

    # -- cost -----------------------------------------------------------------------------

    def num_parameters(self, arch: Architecture, num_classes: int | None = 10) -> int:
        """Parameters of `build(arch, num_classes)`, from per-op module counts (cached)."""
        index = op_indices(arch)
        total = _skeleton_params(self.C, self.N, num_classes)
        for C_stage in (self.C, 2 * self.C, 4 * self.C):
            total += self.N * sum(_op_params(OP_NAMES[k], C_stage) for k in index)
        return total

    def flops(self, arch: Architecture, resolution: int = 32, num_classes: int | None = 10) -> int:
        """Multiply-accumulates (convs + linear) of `build(arch, num_classes)` per image."""
        if resolution < 4 or resolution % 4:
            raise UserError(f"nb201 needs an image size divisible by 4, got {resolution}")
        index = op_indices(arch)
        total = _skeleton_macs(self.C, self.N, num_classes, resolution)
        for stage, C_stage in enumerate((self.C, 2 * self.C, 4 * self.C)):
            size = resolution // 2**stage
            total += self.N * sum(_op_macs(OP_NAMES[k], C_stage, size) for k in index)
        return total

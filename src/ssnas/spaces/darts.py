"""DARTS cell search space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture
Search", ICLR 2019), as used by CSNAS (Nguyen & Chang, arXiv 2102.10557).

A cell has two input states (0, 1: the outputs of the two previous cells) and
`steps` intermediate nodes (states 2 .. steps+1). Each node sums two ops, each
applied to one of the earlier states, with the two inputs distinct. The cell
outputs the channel concatenation of its `concat` nodes (DARTS: the last
`multiplier` nodes). A network stacks `layers` cells; those at layers//3 and
2*layers//3 are reduction cells (stride 2 on the edges from states 0 and 1,
channels doubled).

Contents, in reading order: the genotype value and its two text forms, the
CSNAS one-op-per-edge decoder, the DARTS ops, the cell and network, the space.
"""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Any

import torch
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces import SPACES
from ssnas.spaces.base import Architecture
from ssnas.spaces.cost import count_macs, count_parameters
from ssnas.spaces.ops import AvgPool2d, FactorizedReduce, ReLUConvBN

NONE = "none"
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
GENOTYPE_OPS: tuple[str, ...] = tuple(op for op in DARTS_OPS if op != NONE)
_CELL_KINDS = ("normal", "reduce")
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")

Edge = tuple[str, int]  # (op name, input state index)


# --------------------------------------------------------------------------- genotype


def _check_cell(kind: str, edges: tuple[Edge, ...], concat: tuple[int, ...]) -> None:
    if len(edges) < 2 or len(edges) % 2:
        raise UserError(
            f"genotype {kind} has {len(edges)} entries; it needs 2 per intermediate node "
            "(an even number, at least 2)"
        )
    for position, (op, index) in enumerate(edges):
        node = 2 + position // 2
        if op == NONE:
            raise UserError(f"genotype {kind} node {node}: 'none' cannot appear in a genotype (drop the edge)")
        if op not in GENOTYPE_OPS:
            raise UserError(
                f"genotype {kind} node {node}: unknown op {op!r}; "
                f"valid ops: {', '.join(GENOTYPE_OPS)}"
            )
        if not 0 <= index < node:
            raise UserError(
                f"genotype {kind} node {node}: input {index} is out of range; "
                f"node {node} can only take inputs 0..{node - 1}"
            )
        if position % 2 and index == edges[position - 1][1]:
            raise UserError(
                f"genotype {kind} node {node} takes input {index} twice; "
                "the two inputs of a node must differ"
            )
    steps = len(edges) // 2
    if not concat or list(concat) != sorted(set(concat)):
        raise UserError(
            f"genotype {kind}_concat {list(concat)} must be a non-empty, increasing "
            "list of node indices"
        )
    if concat[0] < 2 or concat[-1] > steps + 1:
        raise UserError(
            f"genotype {kind}_concat {list(concat)} is out of range; "
            f"intermediate nodes are 2..{steps + 1}"
        )


def _concat_text(concat: tuple[int, ...]) -> str:
    if len(concat) > 1 and list(concat) == list(range(concat[0], concat[-1] + 1)):
        return f"range({concat[0]}, {concat[-1] + 1})"
    return str(list(concat))


@dataclass(frozen=True)
class Genotype:
    """A discrete DARTS architecture: per cell type, two `(op, input)` pairs per node.

    `normal[2*i]` and `normal[2*i+1]` feed node `2+i`; inputs 0 and 1 are the two
    previous cells, `2..` earlier nodes. `none` never appears (DARTS drops it when
    it derives a genotype). Construction validates and raises `UserError`.

    >>> g = Genotype.from_text(str(DARTS_V2))
    >>> g == DARTS_V2 and g.steps
    4
    """

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for kind in _CELL_KINDS:  # accept lists and ranges; store tuples (hashable)
            object.__setattr__(self, kind, _edges(getattr(self, kind), kind))
            concat = f"{kind}_concat"
            object.__setattr__(self, concat, _indices(getattr(self, concat), concat))
        _check_cell("normal", self.normal, self.normal_concat)
        _check_cell("reduce", self.reduce, self.reduce_concat)
        if len(self.normal) != len(self.reduce):
            raise UserError(
                f"genotype normal has {len(self.normal) // 2} nodes but reduce has "
                f"{len(self.reduce) // 2}; both cells need the same number"
            )

    @property
    def steps(self) -> int:
        """Number of intermediate nodes per cell."""
        return len(self.normal) // 2

    def cell(self, kind: str) -> tuple[tuple[Edge, ...], tuple[int, ...]]:
        """`(edges, concat)` of the "normal" or "reduce" cell."""
        return (self.normal, self.normal_concat) if kind == "normal" else (self.reduce, self.reduce_concat)

    def canonical(self) -> Genotype:
        """The same network with each node's two edges ordered by input index."""

        def order(edges: tuple[Edge, ...]) -> tuple[Edge, ...]:
            pairs = (sorted(edges[i : i + 2], key=lambda edge: edge[1]) for i in range(0, len(edges), 2))
            return tuple(edge for pair in pairs for edge in pair)

        return Genotype(order(self.normal), self.normal_concat, order(self.reduce), self.reduce_concat)

    def __str__(self) -> str:
        """The DARTS repository's repr, e.g. `Genotype(normal=[('sep_conv_3x3', 0), ...], ...)`."""
        return (
            f"Genotype(normal={list(self.normal)}, normal_concat={_concat_text(self.normal_concat)}, "
            f"reduce={list(self.reduce)}, reduce_concat={_concat_text(self.reduce_concat)})"
        )

    def to_json(self) -> str:
        """`{"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5], ...}`."""
        return json.dumps(
            {
                "normal": [list(edge) for edge in self.normal],
                "normal_concat": list(self.normal_concat),
                "reduce": [list(edge) for edge in self.reduce],
                "reduce_concat": list(self.reduce_concat),
            }
        )

    @classmethod
    def from_text(cls, text: str) -> Genotype:
        """Parse the JSON form or the DARTS repr (optionally as `NAME = Genotype(...)`).

        The repr is read with `ast`, never evaluated; concat may be a list or `range(a, b)`.
        """
        stripped = text.strip()
        if stripped.startswith("{"):
            return cls._from_fields(_json_fields(stripped), "JSON")
        return cls._from_fields(_repr_fields(stripped), "repr")

    @classmethod
    def _from_fields(cls, fields: Mapping[str, Any], form: str) -> Genotype:
        missing = [name for name in _FIELDS if name not in fields]
        unknown = [name for name in fields if name not in _FIELDS]
        if missing or unknown:
            raise UserError(
                f"genotype {form}: fields must be exactly {', '.join(_FIELDS)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        return cls(
            normal=_edges(fields["normal"], "normal"),
            normal_concat=_indices(fields["normal_concat"], "normal_concat"),
            reduce=_edges(fields["reduce"], "reduce"),
            reduce_concat=_indices(fields["reduce_concat"], "reduce_concat"),
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _edges(value: object, name: str) -> tuple[Edge, ...]:
    if not isinstance(value, (list, tuple)):
        raise UserError(f"genotype {name} must be a list of (op, input) pairs, got {value!r}")
    edges = []
    for item in value:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str) and _is_int(item[1])):
            raise UserError(f"genotype {name}: {item!r} is not an (op name, input index) pair")
        edges.append((item[0], item[1]))
    return tuple(edges)


def _indices(value: object, name: str) -> tuple[int, ...]:
    if isinstance(value, range):
        value = list(value)
    if not (isinstance(value, (list, tuple)) and all(_is_int(item) for item in value)):
        raise UserError(f"genotype {name} must be a list of node indices or range(a, b), got {value!r}")
    return tuple(value)


def _json_fields(text: str) -> dict[str, Any]:
    try:
        fields = json.loads(text)
    except RecursionError:
        raise UserError("genotype JSON is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise UserError(f"genotype JSON is malformed: {error}") from None
    if not isinstance(fields, dict):
        raise UserError("genotype JSON must be an object with normal, normal_concat, reduce, reduce_concat")
    return fields


def _repr_fields(text: str) -> dict[str, Any]:
    shape = "expected Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...) or JSON"
    short = text if len(text) <= 60 else text[:57] + "..."
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise UserError(f"genotype text {short!r} is malformed; {shape}") from None
    body = module.body
    node: ast.expr | None = None
    if len(body) == 1 and isinstance(body[0], ast.Expr):
        node = body[0].value
    elif len(body) == 1 and isinstance(body[0], ast.Assign):  # `DARTS_V2 = Genotype(...)`
        node = body[0].value
    callee = getattr(node, "func", None)
    name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
    if not isinstance(node, ast.Call) or name != "Genotype" or len(node.args) > len(_FIELDS):
        raise UserError(f"genotype text {short!r} is malformed; {shape}")
    fields: dict[str, Any] = {}
    arguments = [(field, arg) for field, arg in zip(_FIELDS, node.args)]
    arguments += [(keyword.arg or "**", keyword.value) for keyword in node.keywords]
    for field, value in arguments:
        if field in fields:
            raise UserError(f"genotype text gives {field} twice")
        fields[field] = _literal(value, field)
    return fields


def _literal(node: ast.expr, field: str) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        bounds = [_literal(arg, field) for arg in node.args]
        if node.keywords or not 1 <= len(bounds) <= 2 or not all(_is_int(b) for b in bounds):
            raise UserError(f"genotype {field}: range() needs one or two integer bounds")
        if len(range(*bounds)) > 64:
            raise UserError(f"genotype {field}: {ast.unparse(node)} is far longer than any cell")
        return range(*bounds)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise UserError(f"genotype {field} is not a literal: {ast.unparse(node)[:60]!r}") from None


DARTS_V1 = Genotype.from_text(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
"""DARTS first-order genotype (quark0/darts cnn/genotypes.py, `DARTS_V1`)."""

DARTS_V2 = Genotype.from_text(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
"""DARTS second-order genotype, the paper's 3.3M-parameter CIFAR-10 cell."""


# --------------------------------------------------------------------------- CSNAS decoder


def csnas_num_edges(steps: int) -> int:
    """Candidate edges of one cell: node 2+i has 2+i incoming edges (14 for 4 steps, 20 for 5)."""
    return steps * (steps + 3) // 2


def decode_csnas(
    encoding: Sequence[str | int],
    steps: int = 4,
    rng: random.Random | None = None,
    multiplier: int = 4,
) -> Genotype:
    """Decode CSNAS's one-op-per-edge encoding (namnguyen0510/CSNAS search/model_generator.py) to a genotype.

    `encoding` holds one op (name, or index into `DARTS_OPS`) per candidate edge,
    normal cell first, then reduce; within a cell node 2 (edges from states 0,1),
    node 3 (0,1,2), ... So its length is `2 * csnas_num_edges(steps)`.

    CSNAS turns each op into a one-hot alpha (100) plus 1e-3 Gaussian noise and applies
    the DARTS top-2 rule. Its intended effect, reproduced here: per node keep two edges
    whose op is not `none`, chosen uniformly at random by `rng` when there are more; if
    fewer than two edges are non-`none`, fill up with `none` edges chosen at random, each
    given a uniformly random non-`none` op (the noise argmax). With `rng=None` the choice
    is deterministic: lowest edge index first, and a filled-in edge gets `max_pool_3x3`.
    (That is what the released code computes in float32 for the kept non-`none` edges:
    their softmax weights are all exactly 1.0 and Python's sort is stable.)

    The output concatenates the last `multiplier` nodes, as in CSNAS. Edges are
    listed by input index within a node.
    """
    per_cell = csnas_num_edges(steps)
    if len(encoding) != 2 * per_cell:
        raise UserError(
            f"CSNAS encoding has {len(encoding)} ops; steps={steps} needs {2 * per_cell} "
            f"({per_cell} normal edges then {per_cell} reduce edges)"
        )
    if not 1 <= multiplier <= steps:
        raise UserError(f"multiplier must be in 1..{steps}, got {multiplier}")
    names = [_op_name(item) for item in encoding]
    cells = []
    for start in (0, per_cell):
        ops = names[start : start + per_cell]
        edges: list[Edge] = []
        offset = 0
        for node in range(2, 2 + steps):
            incoming = ops[offset : offset + node]  # op of edge j -> node, j = 0..node-1
            offset += node
            live = [j for j, op in enumerate(incoming) if op != NONE]
            dead = [j for j, op in enumerate(incoming) if op == NONE]
            if rng is not None:
                rng.shuffle(live)
                rng.shuffle(dead)
            kept = sorted((live + dead)[:2])
            for j in kept:
                op = incoming[j]
                if op == NONE:
                    op = rng.choice(GENOTYPE_OPS) if rng is not None else GENOTYPE_OPS[0]
                edges.append((op, j))
        cells.append(tuple(edges))
    concat = tuple(range(2 + steps - multiplier, 2 + steps))
    return Genotype(cells[0], concat, cells[1], concat)


def _op_name(item: str | int) -> str:
    if _is_int(item) and 0 <= int(item) < len(DARTS_OPS):
        return DARTS_OPS[int(item)]
    if isinstance(item, str) and item in DARTS_OPS:
        return item
    raise UserError(f"CSNAS encoding: unknown op {item!r}; valid: {', '.join(DARTS_OPS)} or 0..7")


# --------------------------------------------------------------------------- ops (DARTS-only;
# ReLUConvBN and FactorizedReduce come from ssnas.spaces.ops)


class DilConv(nn.Sequential):
    """ReLU -> depthwise Conv(k, dilation) -> pointwise Conv -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """Two stacked separable convs (DilConv with dilation 1); only the first strides."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, dilation=1),
            DilConv(c_in, c_out, kernel, 1, padding, dilation=1),
        )


def _make_op(name: str, channels: int, stride: int) -> nn.Module:
    """The DARTS op `name` at `channels` width; stride 2 on a reduction cell's input edges."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, 2, affine=True, track_running_stats=True)
    if name.startswith("sep_conv_"):
        kernel = int(name[-1])
        return SepConv(channels, channels, kernel, stride, kernel // 2)
    if name.startswith("dil_conv_"):
        kernel = int(name[-1])
        return DilConv(channels, channels, kernel, stride, kernel - 1, dilation=2)
    raise UserError(f"op {name!r} cannot be built; valid ops: {', '.join(GENOTYPE_OPS)}")


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability `drop_prob`, rescale the rest (DARTS drop-path).

    x: (B, C, H, W). Uses torch's default generator, like `nn.Dropout`.
    """
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)  # (B,1,1,1)
    return x / keep * mask


# --------------------------------------------------------------------------- network


class Cell(nn.Module):
    """One DARTS cell: (s0, s1) -> concat of the `concat` nodes, (B, len(concat)*C, H', W')."""

    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, channels, 2, affine=True, track_running_stats=True)
            if reduction_prev else ReLUConvBN(c_prev_prev, channels, 1, 1, 0)
        )
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0)
        edges, concat = genotype.cell("reduce" if reduction else "normal")
        self.inputs = [index for _, index in edges]
        self.concat = list(concat)
        self.multiplier = len(concat)
        self.ops = nn.ModuleList(
            _make_op(op, channels, 2 if reduction and index < 2 else 1) for op, index in edges
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            total = 0
            for position in (2 * i, 2 * i + 1):
                op = self.ops[position]
                h = op(states[self.inputs[position]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, multiplier*C, H', W')


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier on the 8x8 map after the second reduction (32x32 input)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),  # 2x2 -> 1x1
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))  # (B,768,1,1) -> (B,768) -> (B,classes)


class DartsNetwork(nn.Module):
    """DARTS CIFAR network (NetworkCIFAR): stem, `layers` cells, global pooling.

    `forward_features(x)`: (B,3,H,W) -> (B, feature_dim), feature_dim = multiplier * 4C.
    `forward(x)`: logits (B, num_classes); in training mode with `auxiliary=True` the
    pair (logits, aux_logits). Without a classifier `forward` returns the features.
    Drop-path uses the `drop_path_prob` attribute (schedulers set it per epoch).
    The auxiliary head assumes 32x32 inputs; its parameters are named `auxiliary_head.*`.
    """

    def __init__(
        self,
        genotype: Genotype,
        C: int = 16,
        layers: int = 8,
        stem_multiplier: int = 3,
        num_classes: int | None = None,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ) -> None:
        super().__init__()
        if auxiliary and num_classes is None:
            raise UserError("an auxiliary head needs num_classes")
        if layers < 1 or C < 1:
            raise UserError(f"DARTS network needs layers >= 1 and C >= 1, got layers={layers}, C={C}")
        self.drop_path_prob = drop_path_prob
        self.auxiliary_at = 2 * layers // 3
        stem_width = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, stem_width, 3, padding=1, bias=False), nn.BatchNorm2d(stem_width))
        c_prev_prev, c_prev, channels = stem_width, stem_width, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        auxiliary_width = stem_width
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            channels = channels * 2 if reduction else channels
            cell = Cell(genotype, c_prev_prev, c_prev, channels, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * channels
            if i == self.auxiliary_at:
                auxiliary_width = c_prev
        self.feature_dim = c_prev
        self.auxiliary_head = AuxiliaryHeadCIFAR(auxiliary_width, num_classes) if auxiliary and num_classes else None
        self.classifier = nn.Linear(c_prev, num_classes) if num_classes is not None else None

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B,3,H,W) -> pooled features (B, feature_dim), aux logits (training + aux only)."""
        s0 = s1 = self.stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.auxiliary_at and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        return s1.mean(dim=(2, 3)), aux_logits  # (B, C_last, H', W') -> (B, C_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        features, aux_logits = self._trunk(x)
        if self.classifier is None:
            return features
        logits = self.classifier(features)
        return (logits, aux_logits) if aux_logits is not None else logits


# --------------------------------------------------------------------------- space


COST_IMAGE_SIZE = 32  # the side the FLOPs of a DARTS network are counted at (CIFAR)


# The counts below build throwaway modules; fork_rng keeps them from drawing from the caller's global random state.


@lru_cache(maxsize=None)
def _op_cost(op: str, channels: int, stride: int, side: int) -> tuple[int, int]:
    """(parameters, MACs per image) of one DARTS op at `channels` on a side x side input."""
    with torch.random.fork_rng(devices=[]):
        module = _make_op(op, channels, stride)
    return count_parameters(module), count_macs(module, torch.zeros(1, channels, side, side))


@lru_cache(maxsize=None)
def _skeleton_cost(steps: int, multiplier: int, C: int, layers: int, stem_multiplier: int,
                   num_classes: int | None) -> tuple[int, int]:  # fmt: skip
    """(parameters, MACs) of a DARTS network without its cell ops: one whose every op is a 3x3 max
    pooling (no parameters, no MACs) counts the stem, preprocessing, classifier alone."""
    edges = tuple(("max_pool_3x3", i) for node in range(2, 2 + steps) for i in (0, 1))
    concat = tuple(range(2 + steps - multiplier, 2 + steps))
    with torch.random.fork_rng(devices=[]):
        network = DartsNetwork(Genotype(edges, concat, edges, concat), C, layers, stem_multiplier, num_classes)
    return count_parameters(network), count_macs(network, torch.zeros(1, 3, COST_IMAGE_SIZE, COST_IMAGE_SIZE))


@SPACES.register("darts")
class DartsSpace:
    """DARTS cell space with flat, always-valid choices (for TPE and mutation).

    Per cell type ("normal", "reduce") and node n = 2..steps+1 there are three decisions:
    `{cell}.n{n}.inputs`, an unordered pair "a,b" (a < b < n) of distinct inputs;
    `{cell}.n{n}.op_a`, the op on input a; `{cell}.n{n}.op_b`, the op on input b.
    Every combination is a valid genotype, and each architecture has exactly one
    choice vector, so `key` (the canonical genotype string) identifies it.

    Args:
        steps: intermediate nodes per cell (DARTS 4; CSNAS code 5).
        C: initial cell width; layers: cells; stem_multiplier: stem width = C * this.
        multiplier: the cell outputs the concat of its last `multiplier` nodes (DARTS 4).
        ops: candidate ops, a subset of `DARTS_OPS`; `none` is never placed in a genotype.
    """

    name = "darts"

    def __init__(
        self,
        steps: int = 4,
        C: int = 16,
        layers: int = 8,
        stem_multiplier: int = 3,
        multiplier: int = 4,
        ops: Sequence[str] = DARTS_OPS,
    ) -> None:
        if steps < 1:
            raise UserError(f"darts space needs steps >= 1, got {steps}")
        if not 1 <= multiplier <= steps:
            raise UserError(f"darts space multiplier must be in 1..{steps}, got {multiplier}")
        unknown = [op for op in ops if op not in DARTS_OPS]
        if unknown:
            raise UserError(f"darts space: unknown ops {unknown}; valid ops: {', '.join(DARTS_OPS)}")
        self.steps, self.C, self.layers, self.stem_multiplier = steps, C, layers, stem_multiplier
        self.multiplier = multiplier
        self.ops = tuple(op for op in DARTS_OPS if op in ops and op != NONE)
        if not self.ops:
            raise UserError("darts space needs at least one op besides 'none'")
        self.concat = tuple(range(2 + steps - multiplier, 2 + steps))
        self._choices: dict[str, tuple[str, ...]] = {}
        for kind in _CELL_KINDS:
            for node in range(2, 2 + steps):
                pairs = tuple(f"{a},{b}" for a, b in combinations(range(node), 2))
                self._choices[f"{kind}.n{node}.inputs"] = pairs
                self._choices[f"{kind}.n{node}.op_a"] = self.ops
                self._choices[f"{kind}.n{node}.op_b"] = self.ops

    def choices(self) -> Mapping[str, Sequence[str]]:
        return dict(self._choices)

    def make(self, choices: Sequence[str]) -> Architecture:
        values = tuple(choices)
        if len(values) != len(self._choices):
            raise UserError(f"darts space takes {len(self._choices)} choices, got {len(values)}")
        for (decision, options), value in zip(self._choices.items(), values):
            if value not in options:
                raise UserError(f"darts choice {decision}={value!r} is invalid; options: {', '.join(options)}")
        return Architecture(self.name, values, str(self._genotype_of(values)))

    def genotype(self, arch: Architecture) -> Genotype:
        """The (canonical) genotype of an architecture of this space."""
        if arch.space != self.name or len(arch.choices) != len(self._choices):
            raise UserError(f"architecture {arch.key!r} is not from a darts space with steps={self.steps}")
        return self._genotype_of(arch.choices)

    def _genotype_of(self, values: Sequence[str]) -> Genotype:
        cells = []
        for c in range(2):
            edges: list[Edge] = []
            for i in range(self.steps):
                pair, op_a, op_b = values[3 * (c * self.steps + i) : 3 * (c * self.steps + i) + 3]
                a, b = (int(part) for part in pair.split(","))
                edges += [(op_a, a), (op_b, b)]
            cells.append(tuple(edges))
        return Genotype(cells[0], self.concat, cells[1], self.concat)

    def from_genotype(self, genotype: Genotype) -> Architecture:
        """The architecture of a genotype (UserError if it does not fit this space)."""
        if genotype.steps != self.steps:
            raise UserError(f"genotype has {genotype.steps} nodes per cell; this darts space has steps={self.steps}")
        values: list[str] = []
        for kind in _CELL_KINDS:
            edges, concat = genotype.canonical().cell(kind)
            if concat != self.concat:
                raise UserError(
                    f"genotype {kind}_concat {list(concat)} differs from this space's {list(self.concat)} "
                    f"(the last multiplier={self.multiplier} nodes)"
                )
            for i in range(self.steps):
                (op_a, a), (op_b, b) = edges[2 * i : 2 * i + 2]
                values += [f"{a},{b}", op_a, op_b]
        return self.make(values)

    def parse(self, text: str) -> Architecture:
        """Parse a genotype in the DARTS repr or JSON form (see `Genotype.from_text`)."""
        return self.from_genotype(Genotype.from_text(text))

    def sample(self, rng: random.Random) -> Architecture:
        """Uniform over the flat choices (input pairs uniform per node)."""
        return self.make([rng.choice(options) for options in self._choices.values()])

    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture:
        """Change one decision (an input pair or an op) to a different option."""
        self.genotype(arch)
        values = list(arch.choices)
        mutable = [i for i, options in enumerate(self._choices.values()) if len(options) > 1]
        if not mutable:
            raise UserError("darts space has a single architecture; nothing to mutate")
        position = rng.choice(mutable)
        options = list(self._choices.values())[position]
        values[position] = rng.choice([option for option in options if option != values[position]])
        return self.make(values)

    # -- cost (closed forms: a cost query builds no network, so 100,000 genotypes cost seconds) ---

    def num_parameters(self, arch: Architecture, num_classes: int | None = 10) -> int:
        """Parameters of `build(arch, num_classes)`: the genotype-free skeleton plus each op's count (cached)."""
        total = _skeleton_cost(self.steps, self.multiplier, self.C, self.layers, self.stem_multiplier, num_classes)[0]
        return total + sum(_op_cost(op, channels, stride, size)[0] for op, channels, stride, size in self._ops(arch))

    def flops(self, arch: Architecture, num_classes: int | None = 10) -> int:
        """Multiply-accumulates (convs + linear) of `build(arch, num_classes)` on one 32x32 image."""
        total = _skeleton_cost(self.steps, self.multiplier, self.C, self.layers, self.stem_multiplier, num_classes)[1]
        return total + sum(_op_cost(op, channels, stride, size)[1] for op, channels, stride, size in self._ops(arch))

    def _ops(self, arch: Architecture) -> list[tuple[str, int, int, int]]:
        """(op, channels, stride, input side) of every op of `arch`'s network on 32x32 images."""
        genotype, ops = self.genotype(arch), []
        channels, side = self.C, COST_IMAGE_SIZE
        for i in range(self.layers):
            reduction = i in (self.layers // 3, 2 * self.layers // 3)
            channels = channels * 2 if reduction else channels
            for op, index in genotype.cell("reduce" if reduction else "normal")[0]:
                stride = 2 if reduction and index < 2 else 1
                ops.append((op, channels, stride, side if index < 2 or not reduction else -(-side // 2)))
            side = -(-side // 2) if reduction else side
        return ops

    def build(
        self,
        arch: Architecture,
        num_classes: int | None = None,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ) -> DartsNetwork:
        """The DARTS CIFAR network of `arch` at this space's C, layers and stem multiplier."""
        return DartsNetwork(
            self.genotype(arch),
            C=self.C,
            layers=self.layers,
            stem_multiplier=self.stem_multiplier,
            num_classes=num_classes,
            auxiliary=auxiliary,
            drop_path_prob=drop_path_prob,
        )

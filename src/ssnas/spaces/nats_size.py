"""NATS-Bench size search space S_s (Dong et al., TPAMI 2021), as searched by BossNAS.

Every network uses the same cell, the best NAS-Bench-201 topology

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|

(node = sum of its incoming edges; `nor_conv_3x3` = ReLU-Conv3x3-BN; `skip_connect` is the
identity, or Conv1x1-BN when the cell changes width). The macro skeleton (xautodl
`DynamicShapeTinyNet` with one cell per stage) is

    stem conv3x3(3->C0)+BN -> cell(C0->C0) -> basic block s2 (C0->C1) -> cell(C1->C2)
    -> basic block s2 (C2->C3) -> cell(C3->C4) -> BN-ReLU -> GAP -> FC,

the ResNet basic block being ReLU-Conv3x3(s2)-BN, ReLU-Conv3x3-BN plus an AvgPool2x2 +
Conv1x1 shortcut. The five widths C0..C4 each range over {8, 16, ..., 64}: 8^5 = 32,768
architectures. `Architecture.key` is NATS-Bench's own channel string, e.g. ``"64:32:48:16:64"``.

BossNAS (Li et al., ICCV 2021, §3.2) searches it block-wise with a *slimmable* supernet: every
convolution holds the 64-channel weights and runs on the first c output (and input) channels,
with one BatchNorm per width per layer (switchable BN). Blocks on CIFAR-10 are the layers
{C0, C1}, {C2, C3}, {C4} (64 / 64 / 8 paths); CIFAR-100 uses [2, 1, 2].
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces import SPACES
from ssnas.spaces.base import Architecture, Block

WIDTHS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64)
NUM_LAYERS = 5
DECISIONS: tuple[str, ...] = tuple(f"C{i}" for i in range(NUM_LAYERS))
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
# The same cell as (op, source node) edges into nodes 1, 2, 3.
_CELL_EDGES: tuple[tuple[tuple[str, int], ...], ...] = (
    (("nor_conv_3x3", 0),),
    (("nor_conv_3x3", 0), ("nor_conv_3x3", 1)),
    (("skip_connect", 0), ("nor_conv_3x3", 1), ("nor_conv_3x3", 2)),
)
_IS_REDUCTION = (False, True, False, True, False)


# ---------------------------------------------------------------- slimmable bricks


class SlimConv2d(nn.Conv2d):
    """A bias-free Conv2d holding its widest weights; `forward(x, c)` uses the first c filters
    and the first `x.shape[1]` input channels (Yu et al., Slimmable Networks, 2019)."""

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:  # type: ignore[override]
        weight = self.weight[:out_channels, : x.shape[1]]  # (c_out, c_in, k, k)
        return F.conv2d(x, weight, None, self.stride, self.padding)


class SwitchableBatchNorm2d(nn.ModuleDict):
    """One BatchNorm2d per width (keyed by str(width)), picked by the input's channel count."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__({str(w): nn.BatchNorm2d(w) for w in widths})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = str(int(x.shape[1]))  # int(): a plain number also while traced for TorchScript / ONNX export
        if key not in self:
            raise ValueError(f"no BatchNorm for width {key}; have {', '.join(self.keys())}")
        return self[key](x)


class _ReLUConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, widths: Sequence[int]):
        super().__init__()
        self.relu = nn.ReLU()  # a module, so activation hooks (NASWOT) see it
        self.conv = SlimConv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = SwitchableBatchNorm2d(widths)

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        return self.bn(self.conv(self.relu(x), width))


class _ConvBN(nn.Module):
    """Conv1x1-BN: xautodl's stride-1 `FactorizedReduce` (skip edge that changes width)."""

    def __init__(self, c_in: int, c_out: int, widths: Sequence[int]):
        super().__init__()
        self.conv = SlimConv2d(c_in, c_out, 1, 1, 0, bias=False)
        self.bn = SwitchableBatchNorm2d(widths)

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        return self.bn(self.conv(x, width))


class _Cell(nn.Module):
    """The fixed NB201 cell from C_in to C_out channels (stride 1)."""

    def __init__(self, c_in: int, c_out: int, widths: Sequence[int], slimmable: bool):
        super().__init__()
        self.edges = nn.ModuleList()
        for node_edges in _CELL_EDGES:
            for op, source in node_edges:
                source_channels = c_in if source == 0 else c_out
                if op == "nor_conv_3x3":
                    self.edges.append(_ReLUConvBN(source_channels, c_out, 3, 1, widths))
                elif slimmable or source_channels != c_out:
                    # Used only when the actual widths differ; identity otherwise.
                    self.edges.append(_ConvBN(source_channels, c_out, widths))
                else:
                    self.edges.append(nn.Identity())

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        nodes = [x]
        edges = iter(self.edges)
        for node_edges in _CELL_EDGES:
            total: torch.Tensor | int = 0
            for (op, source), edge in zip(node_edges, edges):
                inp = nodes[source]
                if op == "skip_connect" and inp.shape[1] == width:
                    total = total + inp
                else:
                    total = total + edge(inp, width)
            nodes.append(total)  # type: ignore[arg-type]
        return nodes[-1]


class _BasicBlock(nn.Module):
    """ResNet basic block with stride 2 (xautodl `ResNetBasicblock`)."""

    def __init__(self, c_in: int, c_out: int, widths: Sequence[int]):
        super().__init__()
        self.conv_a = _ReLUConvBN(c_in, c_out, 3, 2, widths)
        self.conv_b = _ReLUConvBN(c_out, c_out, 3, 1, widths)
        self.shortcut = SlimConv2d(c_in, c_out, 1, 1, 0, bias=False)

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        residual = self.shortcut(F.avg_pool2d(x, 2, 2), width)
        return residual + self.conv_b(self.conv_a(x, width), width)


class _Body(nn.Module):
    """Stem + the five layers, built for maximum widths `max_channels`; the widths a forward
    may use per layer are `allowed[i]` (one BN each)."""

    def __init__(
        self, max_channels: Sequence[int], allowed: Sequence[Sequence[int]], slimmable: bool
    ):
        super().__init__()
        self.stem_conv = SlimConv2d(3, max_channels[0], 3, 1, 1, bias=False)
        self.stem_bn = SwitchableBatchNorm2d(allowed[0])
        self.layers = nn.ModuleList()
        c_prev = max_channels[0]
        for c, widths, reduction in zip(max_channels, allowed, _IS_REDUCTION):
            if reduction:
                self.layers.append(_BasicBlock(c_prev, c, widths))
            else:
                self.layers.append(_Cell(c_prev, c, widths, slimmable))
            c_prev = c
        self.last_bn = SwitchableBatchNorm2d(allowed[-1])
        self.last_relu = nn.ReLU()

    def forward(self, x: torch.Tensor, widths: Sequence[int], start: int = 0) -> torch.Tensor:
        """(B,3,H,W) -> output of layer len(widths)-1 (before the final BN-ReLU); with
        `start` > 0, x is layer start-1's output and only layers start.. run."""
        if start == 0:
            x = self.stem_bn(self.stem_conv(x, widths[0]))
        for layer, width in zip(self.layers[start:], widths[start:]):
            x = layer(x, width)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Final BN-ReLU + global average pooling: (B,C4,h,w) -> (B,C4)."""
        return F.adaptive_avg_pool2d(self.last_relu(self.last_bn(x)), 1).flatten(1)


# ---------------------------------------------------------------- networks


class NatsSizeNet(nn.Module):
    """A standalone S_s network of widths `channels` (C0..C4)."""

    def __init__(self, channels: Sequence[int], num_classes: int | None = None):
        super().__init__()
        self.channels = tuple(channels)
        self.body = _Body(self.channels, [(c,) for c in self.channels], slimmable=False)
        self.feature_dim = self.channels[-1]
        self.classifier = nn.Linear(self.feature_dim, num_classes) if num_classes else None

    def feature_layers(self) -> list[nn.Module]:
        """Stem and the five layers, input to output (for layer-wise proxies)."""
        return [self.body.stem_bn, *self.body.layers]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B, C4)."""
        return self.body.pool(self.body(x, self.channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise ValueError("built without num_classes; use forward_features")
        return self.classifier(self.forward_features(x))


class NatsSizeSupernet(nn.Module):
    """Slimmable S_s supernet (BossNAS §3.2): 64-channel weights, first-c slicing, switchable BN.

    `forward_blocks(x, paths)` runs the stem and the layers of blocks 0..len(paths)-1 at the
    widths in `paths` (each a tuple of width strings, one per layer of the block) and returns
    the last layer's output (B, width, H, W). `forward_features(x, arch)` runs a whole
    architecture -> (B, C4 of arch); `feature_dim` is the widest C4 (64).
    """

    def __init__(self, block_layers: Sequence[int] = (2, 2, 1)):
        super().__init__()
        self.block_layers = tuple(block_layers)
        top = max(WIDTHS)
        self.body = _Body([top] * NUM_LAYERS, [WIDTHS] * NUM_LAYERS, slimmable=True)
        self.feature_dim = top

    def forward_blocks(self, x: torch.Tensor, paths: Sequence[Sequence[str]], start: int = 0) -> torch.Tensor:
        if len(paths) > len(self.block_layers):
            raise ValueError(f"{len(paths)} paths for {len(self.block_layers)} blocks")
        widths: list[int] = []
        for index, path in enumerate(paths):
            if len(path) != self.block_layers[index]:
                raise ValueError(f"block {index} has {self.block_layers[index]} layers: {path}")
            widths.extend(int(w) for w in path)
        return self.body(x, widths, start=sum(self.block_layers[:start]))

    def forward_features(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        return self.body.pool(self.body(x, [int(c) for c in arch.choices]))


# ---------------------------------------------------------------- the space


@SPACES.register("nats-size")
class NatsSizeSpace:
    """NATS-Bench S_s: five widths in {8..64}; blocks per BossNAS (default CIFAR-10 [2,2,1])."""

    name = "nats-size"

    def __init__(self, block_layers: Sequence[int] = (2, 2, 1)) -> None:
        block_layers = tuple(int(n) for n in block_layers)
        if sum(block_layers) != NUM_LAYERS or min(block_layers) < 1:
            raise UserError(f"block_layers must be positive and sum to 5, got {block_layers}")
        self.block_layers = block_layers

    # -- SearchSpace
    def choices(self) -> Mapping[str, Sequence[str]]:
        return {d: tuple(str(w) for w in WIDTHS) for d in DECISIONS}

    def make(self, choices: Sequence[str]) -> Architecture:
        choices = tuple(choices)
        if len(choices) != NUM_LAYERS:
            raise UserError(f"NATS size architecture needs 5 widths, got {len(choices)}")
        allowed = {str(w) for w in WIDTHS}
        for name, value in zip(DECISIONS, choices):
            if value not in allowed:
                raise UserError(f"width {name}={value!r} is not one of {', '.join(sorted(allowed, key=int))}")
        return Architecture(self.name, choices, ":".join(choices))

    def parse(self, text: str) -> Architecture:
        """Parse ``"C0:C1:C2:C3:C4"`` (e.g. ``"64:32:48:16:64"``); no spaces, no leading zeros."""
        return self.make(text.split(":"))

    def sample(self, rng: random.Random) -> Architecture:
        return self.make([str(rng.choice(WIDTHS)) for _ in DECISIONS])

    def build(self, arch: Architecture, num_classes: int | None = None) -> NatsSizeNet:
        return NatsSizeNet([int(c) for c in self._check(arch).choices], num_classes)

    # -- SupportsEnumerate / SupportsMutate
    def enumerate(self) -> Iterator[Architecture]:
        for combo in itertools.product(WIDTHS, repeat=NUM_LAYERS):
            yield self.make([str(w) for w in combo])

    def size(self) -> int:
        return len(WIDTHS) ** NUM_LAYERS

    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture:
        """Change one width to a different value."""
        choices = list(self._check(arch).choices)
        i = rng.randrange(NUM_LAYERS)
        choices[i] = str(rng.choice([w for w in WIDTHS if str(w) != choices[i]]))
        return self.make(choices)

    # -- SupportsBlocks
    def blocks(self) -> Sequence[Block]:
        out, start = [], 0
        for index, n in enumerate(self.block_layers):
            out.append(Block(index, DECISIONS[start : start + n]))
            start += n
        return out

    def block_paths(
        self, block: int, previous: Sequence[tuple[str, ...]] = ()
    ) -> list[tuple[str, ...]]:
        """All width tuples of `block` (independent of earlier blocks): 8^layers paths."""
        n = self.blocks()[block].decisions
        return [tuple(str(w) for w in combo) for combo in itertools.product(WIDTHS, repeat=len(n))]

    def build_block_supernet(self, **kwargs: object) -> NatsSizeSupernet:
        return NatsSizeSupernet(self.block_layers)

    # -- cost
    def flops(self, arch: Architecture, image_size: int = 32, num_classes: int = 10) -> int:
        """Multiply-accumulates of all convolutions and the classifier for one image
        (BN, ReLU, pooling and additions not counted), computed in closed form."""
        c = [int(w) for w in self._check(arch).choices]
        hw = image_size * image_size
        total = 3 * c[0] * 9 * hw  # stem
        c_prev = c[0]
        for width, reduction in zip(c, _IS_REDUCTION):
            if reduction:
                hw //= 4
                total += (9 * c_prev * width + 9 * width * width + c_prev * width) * hw
            else:  # two 3x3 convs from the input node, three from inner nodes, skip proj
                total += (2 * 9 * c_prev * width + 3 * 9 * width * width) * hw
                total += c_prev * width * hw if c_prev != width else 0
            c_prev = width
        return total + c[-1] * num_classes

    def _check(self, arch: Architecture) -> Architecture:
        if arch.space != self.name:
            raise UserError(f"architecture {arch.key!r} belongs to space {arch.space!r}, not {self.name!r}")
        return arch

"""MBConv search space of BossNAS's ranking experiments (Li et al., ICCV 2021, §3.2).

Skeleton (ImageNet preset, 224x224 input):

    stem Conv3x3 s2 (3->32)-BN-SiLU -> MB1 DW-separable 3x3 (32->16, SE 0.25)
    -> 5 blocks, out channels 24/40/80/112/192, first strides 2/2/2/1/2, layers 2/4/4/4/4
    -> [standalone only] Conv1x1 (192->1280)-BN-SiLU -> GAP -> FC.

Each of the 18 layers picks one of four inverted-residual ops (Sandler et al., 2018) with
squeeze-excitation 0.25 and SiLU: ``mb6_k3``, ``mb6_k5``, ``mb3_k3``, ``mb3_k5`` (expansion 6
or 3, depthwise kernel 3 or 5): 4^18 ~ 6.9e10 architectures, 16/256/256/256/256 paths per
block. As in the released supernet (`mbconv_supernet.py`) every layer is residual: the first
layer of a block, which changes width and/or resolution, has an AvgPool2x2 (if strided) +
Conv1x1-BN shortcut. The released code's fixed extra stage (320 ch, one layer) is left out;
the head conv is ours (EfficientNet-B0's 1280).

`Architecture.key` is the 18 op names joined by ``:`` in layer order, e.g.
``"mb6_k3:mb3_k5:...:mb6_k5"``; parsing is strict (exact names, exactly 18 fields).

Presets (`MBConvSpace(preset=...)`):
* ``"imagenet"``: the paper's widths, stem stride 2.
* ``"cifar"`` (default; 32x32 input, CPU-sized): stem stride 1 and first block stride 1
  (resolutions 32/32/16/8/8/4), widths about halved and rounded to multiples of 8:
  stem 16, MB1 8, blocks 16/24/40/56/96, head 384.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces import SPACES
from ssnas.spaces.base import Architecture, Block

OPS: tuple[str, ...] = ("mb6_k3", "mb6_k5", "mb3_k3", "mb3_k5")
_OP_SHAPE = {"mb6_k3": (6, 3), "mb6_k5": (6, 5), "mb3_k3": (3, 3), "mb3_k5": (3, 5)}


@dataclass(frozen=True)
class MBConvConfig:
    """Widths and strides of the skeleton; `block_layers` fixes the space's blocks."""

    stem_channels: int = 32
    first_channels: int = 16
    block_channels: tuple[int, ...] = (24, 40, 80, 112, 192)
    block_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    block_layers: tuple[int, ...] = (2, 4, 4, 4, 4)
    stem_stride: int = 2
    head_channels: int = 1280

    def layer_specs(self) -> list[tuple[int, int, int]]:
        """(in_channels, out_channels, stride) of each searchable layer."""
        specs, c_in = [], self.first_channels
        for c_out, stride, n in zip(self.block_channels, self.block_strides, self.block_layers):
            for i in range(n):
                specs.append((c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        return specs


PRESETS: dict[str, MBConvConfig] = {
    "imagenet": MBConvConfig(),
    "cifar": MBConvConfig(
        stem_channels=16,
        first_channels=8,
        block_channels=(16, 24, 40, 56, 96),
        block_strides=(1, 2, 2, 1, 2),
        stem_stride=1,
        head_channels=384,
    ),
}


# ---------------------------------------------------------------- ops


def _conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """SE gate (Hu et al., 2018): GAP -> 1x1 (C -> r) -> SiLU -> 1x1 (r -> C) -> sigmoid."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)  # (B,C,1,1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(scale))))


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand-BN-SiLU] -> kxk DW (stride)-BN-SiLU -> SE -> 1x1 project-BN,
    plus the input (identity, or AvgPool2x2 + Conv1x1-BN when shape changes).

    SE width is 0.25 x the layer's input channels (EfficientNet convention).
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, expansion: int, kernel: int, residual: bool = True
    ):
        super().__init__()
        hidden = c_in * expansion
        self.expand = _conv_bn(c_in, hidden, 1) if expansion != 1 else nn.Identity()
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.se = SqueezeExcite(hidden, max(1, int(c_in * 0.25)))
        self.project = _conv_bn(hidden, c_out, 1, act=False)
        self.shortcut: nn.Module | None
        if not residual:
            self.shortcut = None
        elif stride == 1 and c_in == c_out:
            self.shortcut = nn.Identity()
        else:
            pool: list[nn.Module] = []
            if stride > 1:
                pool.append(nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False))
            self.shortcut = nn.Sequential(*pool, _conv_bn(c_in, c_out, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return out if self.shortcut is None else out + self.shortcut(x)


def make_op(name: str, c_in: int, c_out: int, stride: int) -> MBConv:
    expansion, kernel = _OP_SHAPE[name]
    return MBConv(c_in, c_out, stride, expansion, kernel)


class _Stem(nn.Sequential):
    def __init__(self, config: MBConvConfig):
        super().__init__(
            _conv_bn(3, config.stem_channels, 3, config.stem_stride),
            MBConv(config.stem_channels, config.first_channels, 1, 1, 3, residual=False),
        )


class _Head(nn.Module):
    """Conv1x1-BN-SiLU -> GAP: (B,C,h,w) -> (B, head_channels)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = _conv_bn(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.conv(x), 1).flatten(1)


# ---------------------------------------------------------------- networks


class MBConvNet(nn.Module):
    """A standalone network of the space: stem -> 18 chosen ops -> head -> [FC]."""

    def __init__(self, config: MBConvConfig, ops: Sequence[str], num_classes: int | None = None):
        super().__init__()
        self.stem = _Stem(config)
        self.layers = nn.Sequential(*(make_op(op, *spec) for op, spec in zip(ops, config.layer_specs())))
        self.head = _Head(config.block_channels[-1], config.head_channels)
        self.feature_dim = config.head_channels
        self.classifier = nn.Linear(self.feature_dim, num_classes) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B, head_channels)."""
        return self.head(self.layers(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise ValueError("built without num_classes; use forward_features")
        return self.classifier(self.forward_features(x))


class MBConvSupernet(nn.Module):
    """One module per (layer, op) (`candidates[layer][op_index]`), a shared stem and head.

    * `forward_blocks(x, paths)`: stem + blocks 0..len(paths)-1, each path a tuple of op names
      -> (B, C_block, H, W) (no head).
    * `forward_features(x, arch=...)`: one architecture -> (B, head_channels).
    * `forward_features(x, op_weights=...)`: op_weights (18, 4) -> sum_o w[l,o] op_o(x) per layer.
    """

    def __init__(self, config: MBConvConfig):
        super().__init__()
        self.config = config
        self.stem = _Stem(config)
        self.candidates = nn.ModuleList(
            nn.ModuleList(make_op(op, *spec) for op in OPS) for spec in config.layer_specs()
        )
        self.head = _Head(config.block_channels[-1], config.head_channels)
        self.feature_dim = config.head_channels

    def _run(self, x: torch.Tensor, ops: Sequence[str], start: int = 0) -> torch.Tensor:
        """Stem and layers 0..len(ops)-1; with `start` > 0, x is layer start-1's output."""
        x = self.stem(x) if start == 0 else x
        for layer, op in zip(self.candidates[start:], ops[start:]):
            x = cast(nn.ModuleList, layer)[OPS.index(op)](x)  # one ModuleList of candidate ops per layer
        return x

    def forward_blocks(self, x: torch.Tensor, paths: Sequence[Sequence[str]], start: int = 0) -> torch.Tensor:
        layers = self.config.block_layers
        if len(paths) > len(layers) or any(len(p) != n for p, n in zip(paths, layers)):
            raise ValueError(f"paths {[len(p) for p in paths]} do not fit block layers {layers}")
        return self._run(x, [op for path in paths for op in path], start=sum(layers[:start]))

    def forward_features(
        self, x: torch.Tensor, arch: Architecture | None = None, op_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        if (arch is None) == (op_weights is None):
            raise ValueError("give exactly one of arch or op_weights")
        if arch is not None:
            return self.head(self._run(x, arch.choices))
        assert op_weights is not None
        if op_weights.shape != (len(self.candidates), len(OPS)):
            expected = (len(self.candidates), len(OPS))
            raise ValueError(f"op_weights must be {expected}, got {tuple(op_weights.shape)}")
        x = self.stem(x)
        for layer, weights in zip(self.candidates, op_weights):
            x = sum(w * op(x) for w, op in zip(weights, cast(nn.ModuleList, layer)))
        return self.head(x)


# ---------------------------------------------------------------- the space


@SPACES.register("mbconv")
class MBConvSpace:
    """18 layers x 4 MBConv ops; blocks = the 5 stages (BossNAS MBConv ranking space)."""

    name = "mbconv"

    def __init__(self, preset: str = "cifar") -> None:
        if preset not in PRESETS:
            raise UserError(f"unknown mbconv preset {preset!r}; choose from: {', '.join(PRESETS)}")
        self.preset = preset
        self.config = PRESETS[preset]
        self.num_layers = sum(self.config.block_layers)
        self._decisions = tuple(f"layer{i}" for i in range(self.num_layers))

    def choices(self) -> Mapping[str, Sequence[str]]:
        return {d: OPS for d in self._decisions}

    def make(self, choices: Sequence[str]) -> Architecture:
        choices = tuple(choices)
        if len(choices) != self.num_layers:
            raise UserError(f"mbconv architecture needs {self.num_layers} ops, got {len(choices)}")
        for i, op in enumerate(choices):
            if op not in OPS:
                raise UserError(f"layer {i}: unknown op {op!r}; choose from: {', '.join(OPS)}")
        return Architecture(self.name, choices, ":".join(choices))

    def parse(self, text: str) -> Architecture:
        """Parse 18 op names joined by ':' (e.g. ``"mb6_k3:mb3_k5:..."``)."""
        return self.make(text.split(":"))

    def sample(self, rng: random.Random) -> Architecture:
        return self.make([rng.choice(OPS) for _ in self._decisions])

    def build(self, arch: Architecture, num_classes: int | None = None) -> MBConvNet:
        if arch.space != self.name:
            raise UserError(f"architecture {arch.key!r} belongs to space {arch.space!r}, not {self.name!r}")
        return MBConvNet(self.config, arch.choices, num_classes)

    def size(self) -> int:
        return len(OPS) ** self.num_layers

    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture:
        """Replace one layer's op with a different one."""
        choices = list(arch.choices)
        i = rng.randrange(self.num_layers)
        choices[i] = rng.choice([op for op in OPS if op != choices[i]])
        return self.make(choices)

    def blocks(self) -> Sequence[Block]:
        out, start = [], 0
        for index, n in enumerate(self.config.block_layers):
            out.append(Block(index, self._decisions[start : start + n]))
            start += n
        return out

    def block_paths(self, block: int, previous: Sequence[tuple[str, ...]] = ()) -> list[tuple[str, ...]]:
        """Every op tuple of `block` (4^layers; independent of earlier blocks)."""
        paths: list[tuple[str, ...]] = [()]
        for _ in self.blocks()[block].decisions:
            paths = [p + (op,) for p in paths for op in OPS]
        return paths

    def build_block_supernet(self, **kwargs: object) -> MBConvSupernet:
        return MBConvSupernet(self.config)

    def build_supernet(self, **kwargs: object) -> MBConvSupernet:
        return MBConvSupernet(self.config)

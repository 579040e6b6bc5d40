"""HyTra: the hybrid CNN-transformer "fabric" space of BossNAS (Li et al., ICCV 2021, §3.2).

16 layers in 4 blocks of 4. Every layer picks a (block type, scale) pair from six options,
listed in the paper's op-index order::

    att@32  conv@32  att@16  conv@16  conv@8  conv@4

``conv`` = ResConv, ``att`` = ResAtt; the number is the scale's ImageNet stride (1/4 .. 1/32 of
the input image, i.e. levels 0..3 below the stem). ResAtt exists only at 1/16 and 1/32.
`Architecture.key` is the 16 options joined by ``:``, e.g. ``"conv@4:conv@8:conv@16:...:att@32"``.

Rules (checked by `make`, used to enumerate `block_paths`):
* resolution never increases along the 16 layers (level non-decreasing);
* ``restricted=True`` adds the paper's `restricted_path` rule: at most one down-sampling step
  per layer, counting the first layer from the stem's level 0 (so it sits at 1/4 or 1/8).
A block's candidate paths start at the level where the previous block ended (the stem's, 1/4,
for block 0). Per-block counts by start level 1/4, 1/8, 1/16, 1/32:
free 201 / 129 / 80 / 16, restricted 51 / 99 / 80 / 16.

Ops (all bottlenecks with projection factor 4, mid = out/4, final ReLU after the sum):
* ResConv: 1x1 -> DW 3x3 "PEG" (stride s) -> BN-ReLU -> 3x3 -> BN-ReLU -> 1x1 -> BN(γ=0).
* ResAtt (BoTNet without relative embeddings): 1x1 -> DW 3x3 PEG (stride s) -> BN-ReLU ->
  multi-head self-attention (dim_head 64, heads = mid/64) -> BN-ReLU -> 1x1 -> BN(γ=0).
* Shortcut: identity; Conv1x1-BN when only the width changes; Conv3x3 stride 2-BN for one
  down-sampling step. Jumps of 2^k > 2 (free rule only; not in the paper) use a DW PEG of
  kernel 2^k+1 and an AvgPool(2^k) + Conv1x1-BN shortcut.
* The first layer maps the stem to its scale: DW conv (kernel = stride = 2^k) -> 1x1 to out/4
  -> BN, then the op at stride 1.

Presets (`HytraSpace(preset=...)`):
* ``"imagenet"``: stem 7x7 s2 (64)-BN-ReLU-maxpool s2; widths 256/512/1024/2048; dim_head 64.
* ``"cifar"`` (default; 32x32 input, CPU-sized): stem 3x3 s1 (16)-BN-ReLU, no pool, so levels
  are 32/16/8/4 px; widths 32/64/128/256; dim_head 16 (2 heads at 1/16, 4 at 1/32).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces import SPACES
from ssnas.spaces.base import Architecture, Block

OPTIONS: tuple[str, ...] = ("att@32", "conv@32", "att@16", "conv@16", "conv@8", "conv@4")
SCALES: tuple[int, ...] = (4, 8, 16, 32)  # level -> ImageNet stride name
NUM_BLOCKS, LAYERS_PER_BLOCK = 4, 4
NUM_LAYERS = NUM_BLOCKS * LAYERS_PER_BLOCK
STEM = -1  # input "level" of the first layer
BOSSNET_T0 = ":".join(
    ["conv@4", "conv@8"] + [f"{'att' if i == 3 else 'conv'}@16" for i in range(5)]
    + [f"{'conv' if i == 3 else 'att'}@32" for i in range(9)]
)


def option_level(option: str) -> int:
    """``"conv@16"`` -> 2 (level of the scale)."""
    return SCALES.index(int(option.split("@")[1]))


def options_at(level: int) -> list[str]:
    return [o for o in OPTIONS if option_level(o) == level]


@dataclass(frozen=True)
class HytraConfig:
    channels: tuple[int, ...] = (256, 512, 1024, 2048)
    stem_channels: int = 64
    imagenet_stem: bool = True  # 7x7 s2 + maxpool; else 3x3 s1
    dim_head: int = 64


PRESETS: dict[str, HytraConfig] = {
    "imagenet": HytraConfig(),
    "cifar": HytraConfig(channels=(32, 64, 128, 256), stem_channels=16, imagenet_stem=False, dim_head=16),
}


# ---------------------------------------------------------------- ops


def _bn(channels: int, zero: bool = False) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    if zero:
        nn.init.zeros_(bn.weight)
    return bn


class SelfAttention2d(nn.Module):
    """Content-only multi-head self-attention over the h*w positions (BoTNet MHSA, no
    relative embeddings). (B,C,H,W) -> (B,C,H,W)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).reshape(b, 3, self.heads, c // self.heads, h * w)  # (B,3,nh,d,N)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B,nh,N,d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B,nh,N,d)
        return out.transpose(-1, -2).reshape(b, c, h, w)  # (B,C,H,W)


class HytraOp(nn.Module):
    """One ResConv / ResAtt layer from `c_in` channels at stride `stride` to `c_out` channels.

    With `stem_channels`, the layer first maps the stem output (DW conv kernel=stride=`stride`,
    1x1 to c_out/4, BN) and then runs the op at stride 1 from c_out/4 channels.
    """

    def __init__(
        self, kind: str, c_in: int, c_out: int, stride: int, heads: int = 0, stem_channels: int | None = None
    ):
        super().__init__()
        self.stem_adapter: nn.Module | None = None
        if stem_channels is not None:
            c_in = c_out // 4
            self.stem_adapter = nn.Sequential(
                nn.Conv2d(stem_channels, stem_channels, stride, stride, groups=stem_channels, bias=False),
                nn.Conv2d(stem_channels, c_in, 1, bias=False),
                nn.BatchNorm2d(c_in),
            )
            stride = 1
        mid = c_out // 4
        peg_kernel = max(3, stride + 1)
        self.entry = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False),
            nn.Conv2d(mid, mid, peg_kernel, stride, peg_kernel // 2, groups=mid, bias=False),  # PEG
            nn.BatchNorm2d(mid),
            nn.ReLU(),
        )
        mixer: nn.Module
        if kind == "conv":
            mixer = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        elif kind == "att":
            mixer = SelfAttention2d(mid, heads)
        else:
            raise ValueError(f"unknown HyTra op kind {kind!r}")
        self.body = nn.Sequential(
            mixer, nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, c_out, 1, bias=False), _bn(c_out, zero=True)
        )
        self.out_relu = nn.ReLU()
        self.shortcut: nn.Module
        if stride == 1 and c_in == c_out:
            self.shortcut = nn.Identity()
        elif stride == 1:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        elif stride == 2:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out))
        else:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride, stride), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem_adapter is not None:
            x = self.stem_adapter(x)
        return self.out_relu(self.body(self.entry(x)) + self.shortcut(x))


def _make_stem(config: HytraConfig) -> nn.Sequential:
    c = config.stem_channels
    if config.imagenet_stem:
        return nn.Sequential(
            nn.Conv2d(3, c, 7, 2, 3, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
    return nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())


def _make_op(config: HytraConfig, option: str, in_level: int) -> HytraOp:
    """The module for `option` entered from `in_level` (STEM for the first layer)."""
    kind, level = option.split("@")[0], option_level(option)
    c_out = config.channels[level]
    heads = c_out // 4 // config.dim_head if kind == "att" else 0
    if in_level == STEM:
        return HytraOp(kind, 0, c_out, 2**level, heads, stem_channels=config.stem_channels)
    return HytraOp(kind, config.channels[in_level], c_out, 2 ** (level - in_level), heads)


def layer_plan(options: Sequence[str]) -> list[tuple[str, int]]:
    """(option, input level) per layer; the first layer's input is the stem."""
    plan, level = [], STEM
    for option in options:
        plan.append((option, level))
        level = option_level(option)
    return plan


def _op_key(layer: int, option: str, in_level: int) -> str:
    source = "stem" if in_level == STEM else f"{SCALES[in_level]}"
    return f"L{layer}:{option}:from{source}"


# ---------------------------------------------------------------- networks


class HytraNet(nn.Module):
    """A standalone HyTra network: stem -> 16 chosen layers -> GAP -> [FC].
    `feature_dim` is the width of the last layer's scale."""

    def __init__(self, config: HytraConfig, options: Sequence[str], num_classes: int | None = None):
        super().__init__()
        self.stem = _make_stem(config)
        self.layers = nn.Sequential(*(_make_op(config, o, lv) for o, lv in layer_plan(options)))
        self.feature_dim = config.channels[option_level(options[-1])]
        self.classifier = nn.Linear(self.feature_dim, num_classes) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B, feature_dim)."""
        return self.layers(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise ValueError("built without num_classes; use forward_features")
        return self.classifier(self.forward_features(x))


class HytraSupernet(nn.Module):
    """Weight-sharing HyTra supernet: one `HytraOp` per (layer, type, scale, input scale),
    in `ops[_op_key(...)]`, created for every transition the space's rule allows.

    * `forward_blocks(x, paths)`: stem + blocks 0..len(paths)-1 -> (B, C_level, H, W) of the
      last layer (channels and size depend on where the path ended).
    * `forward_features(x, arch)`: a whole architecture -> (B, C of its last scale);
      `feature_dim` is the widest (1/32) width.
    """

    def __init__(self, config: HytraConfig, restricted: bool):
        super().__init__()
        self.stem = _make_stem(config)
        self.ops = nn.ModuleDict()
        for layer in range(NUM_LAYERS):
            for option in OPTIONS:
                level = option_level(option)
                if layer == 0:
                    sources = [STEM] if not restricted or level <= 1 else []
                else:
                    sources = [lv for lv in range(level + 1) if not restricted or level - lv <= 1]
                for in_level in sources:
                    self.ops[_op_key(layer, option, in_level)] = _make_op(config, option, in_level)
        self.feature_dim = config.channels[-1]

    def _run(self, x: torch.Tensor, options: Sequence[str], start: int = 0) -> torch.Tensor:
        """Stem and layers 0..len(options)-1; with `start` > 0, x is layer start-1's output."""
        x = self.stem(x) if start == 0 else x
        for layer, (option, in_level) in enumerate(layer_plan(options)):
            if layer < start:
                continue
            key = _op_key(layer, option, in_level)
            if key not in self.ops:
                raise ValueError(f"layer {layer}: {option} cannot follow scale level {in_level}")
            x = self.ops[key](x)
        return x

    def forward_blocks(self, x: torch.Tensor, paths: Sequence[Sequence[str]], start: int = 0) -> torch.Tensor:
        if len(paths) > NUM_BLOCKS or any(len(p) != LAYERS_PER_BLOCK for p in paths):
            raise ValueError(f"expected up to {NUM_BLOCKS} paths of {LAYERS_PER_BLOCK} layers")
        return self._run(x, [o for path in paths for o in path], start=start * LAYERS_PER_BLOCK)

    def forward_features(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        return self._run(x, arch.choices).mean((2, 3))


# ---------------------------------------------------------------- the space


@SPACES.register("hytra")
class HytraSpace:
    """HyTra (BossNAS): 16 layers x (type, scale), non-increasing resolution, 4 blocks of 4."""

    name = "hytra"

    def __init__(self, preset: str = "cifar", restricted: bool = False) -> None:
        if preset not in PRESETS:
            raise UserError(f"unknown hytra preset {preset!r}; choose from: {', '.join(PRESETS)}")
        self.preset = preset
        self.config = PRESETS[preset]
        self.restricted = restricted
        self._decisions = tuple(f"layer{i}" for i in range(NUM_LAYERS))

    def choices(self) -> Mapping[str, Sequence[str]]:
        return {d: OPTIONS for d in self._decisions}

    def _next_levels(self, level: int) -> range:
        """Levels a layer may take after one at `level` (the stem counts as level 0)."""
        start = max(level, 0)
        return range(start, min(start + 1, 3) + 1) if self.restricted else range(start, 4)

    def make(self, choices: Sequence[str]) -> Architecture:
        choices = tuple(choices)
        if len(choices) != NUM_LAYERS:
            raise UserError(f"hytra architecture needs {NUM_LAYERS} layers, got {len(choices)}")
        level = STEM
        for i, option in enumerate(choices):
            if option not in OPTIONS:
                raise UserError(f"layer {i}: unknown option {option!r}; choose from: {', '.join(OPTIONS)}")
            if option_level(option) not in self._next_levels(level):
                rule = "one down-sampling step per layer" if self.restricted else "non-increasing resolution"
                after = choices[i - 1] if i else "the stem"
                raise UserError(f"layer {i}: {option} breaks the rule ({rule}) after {after}")
            level = option_level(option)
        return Architecture(self.name, choices, ":".join(choices))

    def parse(self, text: str) -> Architecture:
        """Parse 16 options joined by ':' (e.g. `BOSSNET_T0`)."""
        return self.make(text.split(":"))

    def sample(self, rng: random.Random) -> Architecture:
        """Uniform over block paths, block by block (not uniform over whole architectures)."""
        paths: list[tuple[str, ...]] = []
        for block in range(NUM_BLOCKS):
            paths.append(rng.choice(self.block_paths(block, paths)))
        return self.make([o for p in paths for o in p])

    def build(self, arch: Architecture, num_classes: int | None = None) -> HytraNet:
        if arch.space != self.name:
            raise UserError(f"architecture {arch.key!r} belongs to space {arch.space!r}, not {self.name!r}")
        return HytraNet(self.config, self.make(arch.choices).choices, num_classes)

    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture:
        """Change one layer to a different option that keeps the architecture valid."""
        choices = list(arch.choices)
        for i in rng.sample(range(NUM_LAYERS), NUM_LAYERS):
            options = [o for o in OPTIONS if o != choices[i]]
            rng.shuffle(options)
            for option in options:
                candidate = choices[:i] + [option] + choices[i + 1 :]
                try:
                    return self.make(candidate)
                except UserError:
                    continue
        raise ValueError(f"no valid single-layer mutation of {arch.key}")  # unreachable in HyTra

    def blocks(self) -> Sequence[Block]:
        return [
            Block(b, self._decisions[b * LAYERS_PER_BLOCK : (b + 1) * LAYERS_PER_BLOCK])
            for b in range(NUM_BLOCKS)
        ]

    def block_paths(
        self, block: int, previous: Sequence[tuple[str, ...]] = ()
    ) -> list[tuple[str, ...]]:
        """All valid 4-layer paths of `block` that start from where `previous[-1]` ended
        (the stem for block 0). `previous` must hold the paths of blocks 0..block-1."""
        if len(previous) != block:
            raise ValueError(f"block {block} needs the {block} earlier paths, got {len(previous)}")
        level = option_level(previous[-1][-1]) if previous else STEM
        paths: list[tuple[tuple[str, ...], int]] = [((), level)]
        for _ in range(LAYERS_PER_BLOCK):
            paths = [
                (path + (option,), nxt)
                for path, current in paths
                for nxt in self._next_levels(current)
                for option in options_at(nxt)
            ]
        return [path for path, _ in paths]

    def build_block_supernet(self, **kwargs: object) -> HytraSupernet:
        return HytraSupernet(self.config, self.restricted)

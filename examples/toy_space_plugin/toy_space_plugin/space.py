"""`toy`: a 3-layer CNN whose width and kernel size are chosen per layer (216 architectures).

    conv kxk (stride 1) -> BN -> ReLU, conv kxk (stride 2) -> BN -> ReLU, conv kxk (stride 2)
    -> BN -> ReLU -> global average pool -> features (B, width of the last layer) [-> Linear]

`Architecture.key` writes each layer as ``w<width>k<kernel>``, joined by '-', e.g.
``"w16k3-w32k5-w8k3"``. Implements SearchSpace, SupportsEnumerate and SupportsMutate.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces import SPACES, Architecture

LAYERS = 3
_LAYER = re.compile(r"w(\d+)k(\d+)")


class ToyNet(nn.Module):
    """The network of one architecture: `forward_features` (B,3,H,W) -> (B, D), `forward` -> logits."""

    def __init__(self, widths: Sequence[int], kernels: Sequence[int], num_classes: int | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, (width, kernel) in enumerate(zip(widths, kernels)):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c_in, width, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = c_in
        self.classifier = nn.Linear(c_in, num_classes) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))  # (B, C, H', W') -> (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        return self.classifier(features) if self.classifier is not None else features


@SPACES.register("toy")
class ToySpace:
    """Toy 3-layer CNN: per-layer width and kernel size (example plugin)."""

    name = "toy"

    def __init__(self, widths: Sequence[int] = (8, 16, 32), kernels: Sequence[int] = (3, 5)) -> None:
        self.widths = tuple(str(w) for w in widths)
        self.kernels = tuple(str(k) for k in kernels)
        self._choices = {f"layer{i}.{part}": options for i in range(LAYERS)
                         for part, options in (("width", self.widths), ("kernel", self.kernels))}  # fmt: skip

    def choices(self) -> Mapping[str, Sequence[str]]:
        return dict(self._choices)

    def make(self, choices: Sequence[str]) -> Architecture:
        values = tuple(choices)
        if len(values) != len(self._choices):
            raise UserError(f"toy architecture needs {len(self._choices)} choices, got {len(values)}")
        for (decision, options), value in zip(self._choices.items(), values):
            if value not in options:
                raise UserError(f"toy choice {decision}={value!r} is invalid; options: {', '.join(options)}")
        key = "-".join(f"w{values[2 * i]}k{values[2 * i + 1]}" for i in range(LAYERS))
        return Architecture(self.name, values, key)

    def parse(self, text: str) -> Architecture:
        """Parse ``w16k3-w32k5-w8k3`` (one ``w<width>k<kernel>`` per layer)."""
        parts = str(text).strip().split("-")
        matches = [_LAYER.fullmatch(part) for part in parts]
        if len(parts) != LAYERS or not all(matches):
            raise UserError(f"bad toy architecture {text!r}: expected {LAYERS} layers like 'w16k3' joined by '-'")
        return self.make([value for match in matches if match for value in match.groups()])

    def sample(self, rng: random.Random) -> Architecture:
        return self.make([rng.choice(options) for options in self._choices.values()])

    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture:
        """One decision changed to another of its options."""
        values = list(self.make(arch.choices).choices)
        i = rng.randrange(len(values))
        values[i] = rng.choice([o for o in list(self._choices.values())[i] if o != values[i]] or [values[i]])
        return self.make(values)

    def enumerate(self) -> Iterator[Architecture]:
        for values in itertools.product(*self._choices.values()):
            yield self.make(values)

    def size(self) -> int:
        size = 1
        for options in self._choices.values():
            size *= len(options)
        return size

    def build(self, arch: Architecture, num_classes: int | None = None) -> ToyNet:
        values = self.make(arch.choices).choices
        return ToyNet([int(w) for w in values[0::2]], [int(k) for k in values[1::2]], num_classes)

"""Your own search space in one file: define it, register it, search it.

    python examples/03_space_plugin.py --data ../shared/data/cifar10-jpeg --out runs/example-mini

`MiniSpace` below is the whole contract (`ssnas.spaces.SearchSpace`): choices, make, parse,
sample and build; `ssnas.testing.spaces.check_space(MiniSpace())` checks it. The search runs
through `ssnas.run` (settings, then the run folder). The same file works on the command line,
where config.yaml records it for `--config RUN/config.yaml`:

    ssnas search --space-module examples/03_space_plugin.py --space mini --data DIR

To ship a space as an installable package instead, see examples/toy_space_plugin/.
"""

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

import ssnas
from ssnas.errors import UserError
from ssnas.spaces import SPACES, Architecture

DECISIONS = {"depth": ("1", "2", "3"), "width": ("8", "16", "32"), "activation": ("relu", "gelu")}


class MiniNet(nn.Module):
    """`depth` stride-2 conv-BN-activation layers of `width` channels, then global average pooling."""

    def __init__(self, depth: int, width: int, activation: str, num_classes: int | None = None) -> None:
        super().__init__()
        act = nn.ReLU if activation == "relu" else nn.GELU
        self.body = nn.Sequential(*(module for i in range(depth) for module in (
            nn.Conv2d(3 if i == 0 else width, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), act())))
        self.feature_dim = width
        self.head = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))  # (B, width, H', W') -> (B, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))  # (B, num_classes), or the features without classes


@SPACES.register("mini")
class MiniSpace:
    """A plain CNN: depth, width and activation (18 architectures; example 03)."""

    name = "mini"

    def choices(self) -> dict[str, tuple[str, ...]]:
        return dict(DECISIONS)

    def make(self, choices: Sequence[str]) -> Architecture:
        values = tuple(choices)
        if len(values) != len(DECISIONS) or any(v not in o for v, o in zip(values, DECISIONS.values())):
            allowed = "; ".join(f"{d}: {'/'.join(o)}" for d, o in DECISIONS.items())
            raise UserError(f"bad mini architecture {values}: want depth-width-activation with {allowed}")
        return Architecture(self.name, values, "-".join(values))  # key, e.g. "2-16-relu"

    def parse(self, text: str) -> Architecture:
        return self.make(str(text).strip().split("-"))

    def sample(self, rng: random.Random) -> Architecture:
        return self.make([rng.choice(options) for options in DECISIONS.values()])

    def build(self, arch: Architecture, num_classes: int | None = None) -> MiniNet:
        depth, width, activation = self.make(arch.choices).choices
        return MiniNet(int(depth), int(width), activation, num_classes)


if __name__ == "__main__":  # not when `--space-module` loads this file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg")
    parser.add_argument("--out", default="runs/example-mini")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="more search settings, e.g. ratings=10 population=4")
    args = parser.parse_args()
    settings = {k: int(v) if v.isdigit() else v for k, v in (item.split("=", 1) for item in args.set)}

    # space_module: config.yaml records this file, so the run can be repeated or resumed from the CLI.
    result = ssnas.search(args.data, space="mini", space_module=__file__, seed=args.seed, out=args.out, **settings)
    print(f"found {result.arch} (score {result.best.score:.3f}) among {len(result.candidates)} rated architectures")
    print(f"again from the command line: ssnas search --config {Path(args.out) / 'config.yaml'} --out OTHER_FOLDER")

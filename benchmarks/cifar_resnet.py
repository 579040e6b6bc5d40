"""The standard CIFAR ResNet-18 as a one-architecture space, the baseline of `bench_labels.py`.

    import cifar_resnet  # registers the space "cifar-resnet"; its one architecture is "18"
    pretrain(PretrainConfig(arch="18", space="cifar-resnet", ...))

He et al. (CVPR 2016) with the CIFAR stem of the SSL literature (SimCLR appendix B.9, solo-learn,
lightly's benchmarks): a 3x3 stride-1 first convolution and no max-pool, four stages of two basic
blocks (64, 128, 256, 512 channels; stride 2 from the second stage), global average pooling.
11.2 M parameters with a 10-class head. Also loadable with `--space-module benchmarks/cifar_resnet.py`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces import SPACES, Architecture

WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (a 1x1 projection where the shape changes)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels_out))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """(B,3,32,32) -> features (B,512) (`forward_features`) or logits (B, num_classes)."""

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False), nn.BatchNorm2d(WIDTHS[0]), nn.ReLU())
        blocks, channels = [], WIDTHS[0]
        for stage, width in enumerate(WIDTHS):
            for index in range(2):
                blocks.append(BasicBlock(channels, width, 2 if stage > 0 and index == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = channels
        self.classifier = nn.Linear(channels, num_classes) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))  # (B, 512, 4, 4) -> (B, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        return features if self.classifier is None else self.classifier(features)


@SPACES.register("cifar-resnet")
class CifarResNetSpace:
    """One architecture, "18": the CIFAR ResNet-18 baseline."""

    name = "cifar-resnet"

    def choices(self) -> dict[str, tuple[str, ...]]:
        return {"depth": ("18",)}

    def make(self, choices: Sequence[str]) -> Architecture:
        if tuple(choices) != ("18",):
            raise UserError(f"cifar-resnet has one architecture, '18'; got {'-'.join(choices)!r}")
        return Architecture(self.name, ("18",), "18")

    def parse(self, text: str) -> Architecture:
        return self.make([str(text).strip()])

    def sample(self, rng: random.Random) -> Architecture:
        return self.make(["18"])

    def build(self, arch: Architecture, num_classes: int | None = None) -> CifarResNet18:
        self.make(arch.choices)
        return CifarResNet18(num_classes)

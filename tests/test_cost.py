"""FLOPs (multiply-accumulates) of built networks: torch's FlopCounterMode, equal to the per-layer
formula where a network has only convolutions and linear layers, higher where it has attention."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ssnas.spaces import create_space
from ssnas.spaces.budget import Budget, Constraint
from ssnas.spaces.cost import count_macs
from ssnas.spaces.hytra import SelfAttention2d

torch.set_num_threads(1)


def conv_and_linear_macs(module: nn.Module, x: torch.Tensor) -> int:
    """The per-layer formula: output elements x C_in / groups x kH x kW per Conv2d, out x in per Linear."""
    total = 0

    def conv(layer: nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(layer, nn.Conv2d)
        total += out[0].numel() * (layer.in_channels // layer.groups) * layer.kernel_size[0] * layer.kernel_size[1]

    def linear(layer: nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(layer, nn.Linear)
        total += out[0].numel() * layer.in_features

    handles = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
               for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]  # fmt: skip
    with torch.no_grad():
        module.eval()(x)
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("space_name", ["nb201", "darts", "mbconv", "nats-size"])
def test_convolutional_spaces_count_as_the_per_layer_formula(space_name: str) -> None:
    space = create_space(space_name)
    rng = random.Random(0)
    for _ in range(3):
        network = space.build(space.sample(rng), num_classes=10)
        x = torch.zeros(1, 3, 32, 32)
        assert count_macs(network, x) == conv_and_linear_macs(network, x) > 0


def test_hytra_counts_attention_in_its_flops_budget() -> None:
    space = create_space("hytra")
    rng, with_attention = random.Random(0), 0
    for _ in range(4):
        arch = space.sample(rng)
        network = space.build(arch, num_classes=10)
        x = torch.zeros(1, 3, 32, 32)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            network.eval()(x)
        budgeted = Constraint(space, Budget(max_flops=1e9)).cost(arch)["flops"]  # millions, what --max-flops reads
        assert budgeted * 1e6 == counter.get_total_flops() // 2
        if any(isinstance(m, SelfAttention2d) for m in network.modules()):  # attention's products count
            assert budgeted * 1e6 > conv_and_linear_macs(network, x)
            with_attention += 1
    assert with_attention > 0


def test_a_batch_counts_per_sample() -> None:
    space = create_space("nb201")
    network = space.build(space.sample(random.Random(1)), num_classes=10)
    assert count_macs(network, torch.zeros(4, 3, 32, 32)) == count_macs(network, torch.zeros(1, 3, 32, 32))

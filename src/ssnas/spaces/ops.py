"""Candidate operations by name, shared by all cell-based spaces.

Definitions follow NAS-Bench-201 (Dong & Yang, ICLR 2020, `cell_operations.py`) so
that a built NB201 network has exactly the benchmark's parameter count:

* `none`          -> `Zero`: zeros of shape (B, C_out, H/stride, W/stride).
* `skip_connect`  -> `nn.Identity` when stride 1 and C_in == C_out, else `FactorizedReduce`.
* `nor_conv_1x1`  -> ReLU-Conv(1x1, no bias)-BN.
* `nor_conv_3x3`  -> ReLU-Conv(3x3, no bias)-BN.
* `avg_pool_3x3`  -> [ReLU-Conv(1x1)-BN if C_in != C_out] then AvgPool(3, stride, pad 1,
  count_include_pad=False).

Every factory has the signature `(C_in, C_out, stride, affine, track_running_stats)`;
build one with `OPS.create(name, C_in=..., C_out=..., stride=..., affine=..., track_running_stats=...)`.
"""

from __future__ import annotations

import torch
from torch import nn

from ssnas.registry import Registry

OPS: Registry[nn.Module] = Registry("operation")


class ReLUConvBN(nn.Module):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d. (B,C_in,H,W) -> (B,C_out,H/stride,W/stride)."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The `none` op: zeros shaped like the op's output, (B,C_out,H/stride,W/stride)."""

    def __init__(self, C_in: int, C_out: int, stride: int) -> None:
        super().__init__()
        self.C_in, self.C_out, self.stride = C_in, C_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        if self.C_in == self.C_out:
            return x.mul(0.0)
        return x.new_zeros(x.shape[0], self.C_out, x.shape[2], x.shape[3])


class FactorizedReduce(nn.Module):
    """ReLU -> two 1x1 convs (the second on the input shifted by one pixel), concat -> BN.

    Used for `skip_connect` when the resolution or width changes. With stride 1 it is a
    single 1x1 conv. (B,C_in,H,W) -> (B,C_out,H/stride,W/stride).
    """

    def __init__(
        self, C_in: int, C_out: int, stride: int, affine: bool, track_running_stats: bool
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"FactorizedReduce supports stride 1 or 2, got {stride}")
        if stride == 2 and C_out % 2:
            raise ValueError(f"FactorizedReduce with stride 2 needs an even C_out, got {C_out}")
        self.stride = stride
        self.relu = nn.ReLU(inplace=False)
        if stride == 2:
            self.convs = nn.ModuleList(
                nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False) for _ in range(2)
            )
        else:
            self.convs = nn.ModuleList([nn.Conv2d(C_in, C_out, 1, bias=False)])
        self.bn = nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        if self.stride == 1:
            return self.bn(self.convs[0](x))
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # (B,C_in,H,W), moved by 1 px
        out = torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1)
        return self.bn(out)


class AvgPool3x3(nn.Module):
    """Optional 1x1 ReLU-Conv-BN (only when C_in != C_out), then 3x3 average pooling."""

    def __init__(
        self, C_in: int, C_out: int, stride: int, affine: bool, track_running_stats: bool
    ) -> None:
        super().__init__()
        self.preprocess = (
            ReLUConvBN(C_in, C_out, 1, 1, 0, affine, track_running_stats)
            if C_in != C_out
            else nn.Identity()
        )
        self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.preprocess(x))


class ResNetBasicBlock(nn.Module):
    """The fixed reduction block between NB201 stages (He et al. 2016 basic block).

    residual = ReLUConvBN 3x3 (stride) -> ReLUConvBN 3x3; shortcut = AvgPool(2,2) -> 1x1 conv
    (no bias) when stride 2, a 1x1 ReLUConvBN when only the width changes, else identity.
    (B,C_in,H,W) -> (B,C_out,H/stride,W/stride).
    """

    def __init__(
        self,
        C_in: int,
        C_out: int,
        stride: int,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ResNetBasicBlock supports stride 1 or 2, got {stride}")
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride, 1, affine, track_running_stats)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine, track_running_stats)
        self.shortcut: nn.Module
        if stride == 2:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, stride=2), nn.Conv2d(C_in, C_out, 1, bias=False)
            )
        elif C_in != C_out:
            self.shortcut = ReLUConvBN(C_in, C_out, 1, 1, 0, affine, track_running_stats)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


@OPS.register("none")
def _none(
    C_in: int, C_out: int, stride: int, affine: bool = True, track_running_stats: bool = True
) -> nn.Module:
    return Zero(C_in, C_out, stride)


@OPS.register("skip_connect")
def _skip_connect(
    C_in: int, C_out: int, stride: int, affine: bool = True, track_running_stats: bool = True
) -> nn.Module:
    if stride == 1 and C_in == C_out:
        return nn.Identity()
    return FactorizedReduce(C_in, C_out, stride, affine, track_running_stats)


@OPS.register("nor_conv_1x1")
def _nor_conv_1x1(
    C_in: int, C_out: int, stride: int, affine: bool = True, track_running_stats: bool = True
) -> nn.Module:
    return ReLUConvBN(C_in, C_out, 1, stride, 0, affine, track_running_stats)


@OPS.register("nor_conv_3x3")
def _nor_conv_3x3(
    C_in: int, C_out: int, stride: int, affine: bool = True, track_running_stats: bool = True
) -> nn.Module:
    return ReLUConvBN(C_in, C_out, 3, stride, 1, affine, track_running_stats)


@OPS.register("avg_pool_3x3")
def _avg_pool_3x3(
    C_in: int, C_out: int, stride: int, affine: bool = True, track_running_stats: bool = True
) -> nn.Module:
    return AvgPool3x3(C_in, C_out, stride, affine, track_running_stats)

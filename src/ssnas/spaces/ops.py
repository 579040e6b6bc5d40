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

from typing import Any

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


_WINDOW = [(row, column) for row in range(3) for column in range(3)]  # the kernel's order over a 3x3 window


def _box_sum_3x3(x: torch.Tensor) -> torch.Tensor:
    """Sum over each 3x3 window (zero padding 1) of (B,C,H,W), the window read row by row from its
    top left: the order of `avg_pool2d`'s CPU kernel, so every partial sum rounds as there."""
    H, W = x.shape[-2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1))  # (B, C, H+2, W+2)
    total = padded[..., :H, :W].clone()
    for row, column in _WINDOW[1:]:
        total.add_(padded[..., row : row + H, column : column + W])
    return total  # (B, C, H, W)


def _window_counts(x: torch.Tensor) -> torch.Tensor:
    """(H, W) how many in-bounds inputs each 3x3 window (padding 1) covers: 4, 6 or 9."""
    H, W = x.shape[-2:]
    rows = torch.full((H,), 3.0, dtype=x.dtype)
    columns = torch.full((W,), 3.0, dtype=x.dtype)
    rows[0] -= 1
    rows[-1] -= 1
    columns[0] -= 1
    columns[-1] -= 1
    return rows[:, None] * columns[None, :]


class _ExactAvgPool3x3(torch.autograd.Function):
    """`avg_pool2d(x, 3, 1, 1, count_include_pad=False)` on CPU with its values bit for bit (forward
    and gradient) in 9 vectorised slice additions instead of the scalar kernel (about 2.7x faster
    forward + backward at (32,8,32,32) on an AVX-512 Xeon). The kernel sums each window row by row
    from zero and divides by the count; its backward adds grad/count of the windows over each input
    in the same row-major order, the same box sum on grad/count (the window is symmetric)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        counts = _window_counts(x)
        ctx.save_for_backward(counts)
        return _box_sum_3x3(x).div_(counts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (counts,) = ctx.saved_tensors
        return _box_sum_3x3(grad / counts)


class AvgPool2d(nn.AvgPool2d):
    """`nn.AvgPool2d`; the 3x3, stride 1, padding 1, count_include_pad=False pooling of NB201 and
    DARTS cells on contiguous CPU floats runs `_ExactAvgPool3x3` (identical values, faster); under
    torch.func transforms (VKDNW's per-image Jacobians) it runs the kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._exact_route(x):
            return super().forward(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return _ExactAvgPool3x3.apply(x)
        return _box_sum_3x3(x).div_(_window_counts(x))

    def _exact_route(self, x: torch.Tensor) -> bool:
        return (
            self.kernel_size in (3, (3, 3)) and self.stride in (1, (1, 1)) and self.padding in (1, (1, 1))
            and not self.count_include_pad and not self.ceil_mode and self.divisor_override is None
            and x.dim() == 4 and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.is_contiguous()
            and not torch._C._functorch.is_functorch_wrapped_tensor(x)  # torch.func (vmap, jacrev): the kernel
            and not torch.jit.is_scripting() and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and not torch.onnx.is_in_onnx_export()
        )  # fmt: skip


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
        self.pool = AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

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

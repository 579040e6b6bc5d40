"""Batched, seeded augmentation: whole uint8 batches in, lists of normalised views out.

A `ViewMaker` is any callable `(images, generator) -> list[Tensor]`: `images` is
(B,3,H,W) uint8 on any device, each returned view is (B,3,size,size) float32 on the same
device, normalised with a mean/std. Every random number is drawn from the explicit
`torch.Generator` (on the generator's own device, then moved), so the same generator
state gives the same views, and nothing touches the global random state.

The ops are written with plain torch ops and vectorised over the batch (no per-image
Python loop): geometric ops (crop, resize, flip, padding) become one
`F.affine_grid` + `F.grid_sample` per view; colour ops act on the images they were drawn
for. Recipes: SimCLR (Chen et al., 2020), BYOL (Grill et al., 2020), the CIFAR
crop-and-flip used by BossNAS (Li et al., 2021) for supervised references, and CSNAS's
PIRL-style original-plus-patches views (Nguyen & Chang, 2021; namnguyen0510/CSNAS search/ssl_utils.py).

>>> views = simclr_views()
>>> a, b = views(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.Generator().manual_seed(0))
>>> a.shape, b.dtype
(torch.Size([4, 3, 32, 32]), torch.float32)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssnas.registry import Registry

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's and torchvision's grayscale

ViewMaker = Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]]
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""One step on a float batch (B,3,H,W) in [0,1]; returns a float batch in [0,1]."""

VIEWS: Registry[ViewMaker] = Registry("view recipe")


# ----------------------------------------------------------------------- random draws


def _rand(generator: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    """U[0,1) of `shape`, drawn on the generator's device, returned on `device`."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _uniform(low: float, high: float, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * _rand(generator, device, n)


def _coin(p: float, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n,) bool, True with probability `p` (always drawn, so the stream does not depend on p)."""
    return _rand(generator, device, n) < p


# ------------------------------------------------------------------------ geometry


def crop_resize(
    x: torch.Tensor, boxes: torch.Tensor, size: int, hflip: torch.Tensor | None = None, vflip: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop each image to its box, resize to size x size (bilinear) and optionally mirror.

    Args:
        x: (B,C,H,W) float.
        boxes: (B,4) float pixel boxes (left, top, width, height) inside the image;
            samples past the edge repeat the border pixels (as torchvision's resize).
        size: output side.
        hflip, vflip: (B,) bool, mirror left-right / top-bottom.

    Returns:
        (B,C,size,size) float.
    """
    batch, channels, height, width = x.shape
    left, top, box_w, box_h = boxes.to(x.dtype).unbind(1)
    scale_x, scale_y = box_w / width, box_h / height
    if hflip is not None:
        scale_x = torch.where(hflip, -scale_x, scale_x)
    if vflip is not None:
        scale_y = torch.where(vflip, -scale_y, scale_y)
    theta = torch.zeros(batch, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = scale_x, (2 * left + box_w) / width - 1
    theta[:, 1, 1], theta[:, 1, 2] = scale_y, (2 * top + box_h) / height - 1
    grid = F.affine_grid(theta, [batch, channels, size, size], align_corners=False)  # (B,size,size,2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class RandomResizedCrop:
    """Inception-style crop (torchvision `RandomResizedCrop` semantics) plus a horizontal flip.

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio); 10 tries per image, then a
    centre crop with the aspect ratio clamped. The flip is fused into the same resampling.
    """

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, _, height, width = x.shape
        tries, device = 10, x.device
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * _rand(generator, device, batch, tries))
        low, high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(low + (high - low) * _rand(generator, device, batch, tries))
        w = torch.sqrt(area * aspect).round()  # (B, tries)
        h = torch.sqrt(area / aspect).round()
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = fits.float().argmax(1, keepdim=True)  # first try that fits, (B,1)
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
        fallback_w, fallback_h = self._fallback(height, width)
        found = fits.any(1)
        w = torch.where(found, w, torch.full_like(w, fallback_w))
        h = torch.where(found, h, torch.full_like(h, fallback_h))
        corner = _rand(generator, device, batch, 2)
        left = torch.where(found, torch.floor(corner[:, 0] * (width - w + 1)), (width - w) // 2)
        top = torch.where(found, torch.floor(corner[:, 1] * (height - h + 1)), (height - h) // 2)
        flip = _coin(self.hflip, batch, generator, device)
        return crop_resize(x, torch.stack([left, top, w, h], 1), self.size, hflip=flip)

    def _fallback(self, height: int, width: int) -> tuple[float, float]:
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            return float(width), float(round(width / min(self.ratio)))
        if in_ratio > max(self.ratio):
            return float(round(height * max(self.ratio))), float(height)
        return float(width), float(height)


@dataclass(frozen=True)
class PadCrop:
    """Zero-pad by `padding`, take a random size x size crop, flip left-right with p `hflip`.

    The standard CIFAR recipe (`RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`).
    """

    size: int
    padding: int = 4
    hflip: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = F.pad(x, (self.padding,) * 4)  # (B,C,H,W) -> (B,C,H+2p,W+2p), zeros
        batch, _, height, width = x.shape
        corner = _rand(generator, x.device, batch, 2)
        left = torch.floor(corner[:, 0] * (width - self.size + 1))
        top = torch.floor(corner[:, 1] * (height - self.size + 1))
        side = torch.full_like(left, float(self.size))
        flip = _coin(self.hflip, batch, generator, x.device)
        return crop_resize(x, torch.stack([left, top, side, side], 1), self.size, hflip=flip)


@dataclass(frozen=True)
class PatchCrop:
    """A square patch of side `fraction` x the image, at the centre or at a random
    position, resized to size x size, with optional random flips (CSNAS patches)."""

    size: int
    fraction: float = 1.0
    random_position: bool = False
    hflip: float = 0.0
    vflip: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, _, height, width = x.shape
        w, h = float(max(1, round(self.fraction * width))), float(max(1, round(self.fraction * height)))
        if self.random_position:
            corner = _rand(generator, x.device, batch, 2)
            left, top = torch.floor(corner[:, 0] * (width - w + 1)), torch.floor(corner[:, 1] * (height - h + 1))
        else:
            left = torch.full((batch,), float((width - w) // 2), device=x.device)
            top = torch.full((batch,), float((height - h) // 2), device=x.device)
        boxes = torch.stack([left, top, torch.full_like(left, w), torch.full_like(left, h)], 1)
        hflip = _coin(self.hflip, batch, generator, x.device)
        vflip = _coin(self.vflip, batch, generator, x.device)
        return crop_resize(x, boxes, self.size, hflip=hflip, vflip=vflip)


# -------------------------------------------------------------------------- colour


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) -> (B,1,H,W) luma."""
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)  # (3,) -> (1,3,1,1)
    return (x * luma).sum(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * x + (1 - factor) * other, clamped to [0,1]; factor (B,)."""
    factor = factor.view(-1, 1, 1, 1)  # (B,) -> (B,1,1,1)
    return (factor * x + (1 - factor) * other).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` (B,) turns in [-0.5, 0.5] through HSV (value and saturation kept)."""
    red, green, blue = x.unbind(1)  # each (B,H,W)
    value = x.amax(1)
    delta = value - x.amin(1)  # chroma = value * saturation
    inverse = 1 / delta.clamp_min(1e-8)
    hue = torch.where(
        value == red,
        (green - blue) * inverse,
        torch.where(value == green, (blue - red) * inverse + 2, (red - green) * inverse + 4),
    )
    hue = hue / 6 + shift.view(-1, 1, 1)  # (B,) -> (B,1,1)
    hue = hue - hue.floor()  # wrap to [0,1)
    # HSV -> RGB without branches: channel n is v - chroma*clamp(min(k, 4-k), 0, 1), k = (n + 6h) mod 6
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)  # (1,3,1,1)
    k = offsets + 6 * hue.unsqueeze(1)  # (B,3,H,W), in [1, 11)
    k = torch.where(k >= 6, k - 6, k)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return value.unsqueeze(1) - delta.unsqueeze(1) * ramp


@dataclass(frozen=True)
class ColorJitter:
    """Random brightness, contrast, saturation (factors in [1-s, 1+s]) and hue (shift in
    [-h, h]), in a random order per image, applied to each image with probability `p`."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p: float = 0.8

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, device = len(x), x.device
        active = _coin(self.p, batch, generator, device)
        strengths = (self.brightness, self.contrast, self.saturation)
        factors = [_uniform(max(0.0, 1 - s), 1 + s, batch, generator, device) for s in strengths]
        factors.append(_uniform(-self.hue, self.hue, batch, generator, device))
        order = _rand(generator, device, batch, 4).argsort(1)  # (B,4): a random op order per image
        ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        enabled = (*(s > 0 for s in strengths), self.hue > 0)
        x = x.clone()
        for position in range(4):
            for op, factor, on, op_id in zip(ops, factors, enabled, range(4)):
                chosen = (active & (order[:, position] == op_id)).nonzero().squeeze(1)  # (K,)
                if on and len(chosen):
                    x[chosen] = op(x[chosen], factor[chosen])
        return x


@dataclass(frozen=True)
class RandomGrayscale:
    """Replace an image by its luma (on all 3 channels) with probability `p`."""

    p: float = 0.2

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = _coin(self.p, len(x), generator, x.device).view(-1, 1, 1, 1)  # (B,) -> (B,1,1,1)
        return torch.where(chosen, grayscale(x).expand_as(x), x)


@dataclass(frozen=True)
class GaussianBlur:
    """Blur with probability `p` by a Gaussian of sigma ~ U(sigma), separable, reflect-padded."""

    p: float
    kernel_size: int = 3
    sigma: tuple[float, float] = (0.1, 2.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, channels, height, width = x.shape
        active = _coin(self.p, batch, generator, x.device)
        sigma = _uniform(self.sigma[0], self.sigma[1], batch, generator, x.device)
        chosen = active.nonzero().squeeze(1)  # (K,)
        if len(chosen) == 0 or self.kernel_size < 2:
            return x
        half = self.kernel_size // 2
        taps = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)  # (k,)
        kernel = torch.exp(-(taps**2) / (2 * sigma[chosen, None] ** 2))  # (K,k)
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # (K*C,k)
        planes = x[chosen].reshape(1, len(chosen) * channels, height, width)  # (K,C,H,W) -> (1,K*C,H,W)
        planes = F.pad(planes, (half, half, half, half), mode="reflect")
        groups = len(kernel)
        planes = F.conv2d(planes, kernel.view(groups, 1, 1, -1), groups=groups)  # along width
        planes = F.conv2d(planes, kernel.view(groups, 1, -1, 1), groups=groups)  # along height
        x = x.clone()
        x[chosen] = planes.view(len(chosen), channels, height, width)  # (1,K*C,H,W) -> (K,C,H,W)
        return x


@dataclass(frozen=True)
class RandomSolarize:
    """Invert the pixels at or above `threshold` (x -> 1 - x) with probability `p`."""

    p: float
    threshold: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = _coin(self.p, len(x), generator, x.device).view(-1, 1, 1, 1)  # (B,) -> (B,1,1,1)
        return torch.where(chosen & (x >= self.threshold), 1 - x, x)


# ---------------------------------------------------------------------- view makers


class MultiView:
    """A ViewMaker with one transform pipeline per view, then mean/std normalisation.

    Args:
        pipelines: V sequences of transforms; view v applies `pipelines[v]` in order.
        mean, std: per-channel statistics of [0,1] pixels.
    """

    def __init__(
        self,
        pipelines: Sequence[Sequence[Transform]],
        mean: Sequence[float] = CIFAR_MEAN,
        std: Sequence[float] = CIFAR_STD,
    ) -> None:
        self.pipelines = [tuple(steps) for steps in pipelines]
        self.mean, self.std = tuple(mean), tuple(std)

    @property
    def num_views(self) -> int:
        return len(self.pipelines)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """(B,3,H,W) uint8 -> V views, each (B,3,size,size) float32 normalised."""
        pixels = to_unit_float(images)
        views = []
        for steps in self.pipelines:
            view = pixels
            for step in steps:
                view = step(view, generator)
            views.append(normalize(view, self.mean, self.std))
        return views

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pipelines={self.pipelines!r}, mean={self.mean}, std={self.std})"


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) uint8 -> float32 in [0,1]."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images (B,3,H,W), got {images.dtype} {tuple(images.shape)}")
    return images.float().div_(255)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel; x (B,3,H,W) float."""
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)  # (3,) -> (1,3,1,1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


class PatchViews:
    """CSNAS views: [original, patch_a, patch_b], the two patches in a random order per image.

    `views` makes [original, centre patch, random patch]; per image a fair coin swaps the
    two patches, as CSNAS shuffles its patch list.
    """

    def __init__(self, views: MultiView) -> None:
        if views.num_views != 3:
            raise ValueError(f"PatchViews needs exactly 3 pipelines, got {views.num_views}")
        self.views = views
        self.num_views = 3

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        original, centre, random_patch = self.views(images, generator)
        swap = _coin(0.5, len(images), generator, images.device).view(-1, 1, 1, 1)  # (B,) -> (B,1,1,1)
        return [original, torch.where(swap, random_patch, centre), torch.where(swap, centre, random_patch)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.views!r})"


# -------------------------------------------------------------------------- recipes


@VIEWS.register("simclr")
def simclr_views(
    size: int = 32,
    num_views: int = 2,
    scale: tuple[float, float] = (0.2, 1.0),
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
) -> MultiView:
    """SimCLR (Chen et al., 2020): random resized crop, H-flip 0.5, colour jitter
    0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2. The paper's crop scale is (0.08, 1);
    (0.2, 1) is the usual CIFAR choice and the default here."""
    pipeline = (RandomResizedCrop(size, scale), ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), RandomGrayscale(0.2))
    return MultiView([pipeline] * num_views, mean, std)


@VIEWS.register("byol")
def byol_views(
    size: int = 32,
    scale: tuple[float, float] = (0.2, 1.0),
    blur: tuple[float, float] = (1.0, 0.1),
    solarize: tuple[float, float] = (0.0, 0.2),
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
) -> MultiView:
    """BYOL (Grill et al., 2020, Table 6): crop, H-flip, jitter 0.4/0.4/0.2/0.1 with p 0.8,
    grayscale 0.2, then an asymmetric pair: Gaussian blur with p `blur` = (1.0, 0.1) and
    solarize with p `solarize` = (0.0, 0.2) for (view 1, view 2). The blur kernel is ~10%
    of the image side (23 px at 224, 3 px at 32), sigma ~ U(0.1, 2.0)."""
    kernel = 2 * round(0.05 * size) + 1
    shared = (RandomResizedCrop(size, scale), ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8), RandomGrayscale(0.2))
    pipelines = [(*shared, GaussianBlur(blur[v], kernel), RandomSolarize(solarize[v])) for v in range(2)]
    return MultiView(pipelines, mean, std)


@VIEWS.register("crop-flip")
def crop_flip_views(
    size: int = 32,
    padding: int = 4,
    num_views: int = 2,
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
) -> MultiView:
    """The CIFAR recipe of BossNAS's supervised settings: zero-pad 4, random 32x32 crop, H-flip 0.5."""
    return MultiView([(PadCrop(size, padding),)] * num_views, mean, std)


@VIEWS.register("identity")
def identity_views(
    size: int | None = None, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD
) -> MultiView:
    """One view: the images normalised (resized to `size` first when given); for evaluation."""
    steps = () if size is None else (PatchCrop(size),)
    return MultiView([steps], mean, std)


@VIEWS.register("csnas")
def csnas_views(
    size: int = 32,
    patch_fraction: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> PatchViews:
    """CSNAS memory-bank NCE views (namnguyen0510/CSNAS search/ssl_utils.py): [original, patch_a, patch_b].

    original: the image with random H- and V-flips (its colour jitter is torchvision's
    default, i.e. none). Patches: a centre crop, and a random crop with H-flip 0.5,
    V-flip 0.5 and grayscale 0.5; patch side = `patch_fraction` x image side (the spec
    leaves it open); all resized to `size`; patch order shuffled per image. ImageNet
    mean/std by default, as in the CSNAS code.
    """
    pipelines = [
        (PatchCrop(size, 1.0, hflip=0.5, vflip=0.5),),
        (PatchCrop(size, patch_fraction),),
        (PatchCrop(size, patch_fraction, random_position=True, hflip=0.5, vflip=0.5), RandomGrayscale(0.5)),
    ]
    return PatchViews(MultiView(pipelines, mean, std))

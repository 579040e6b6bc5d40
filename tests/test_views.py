"""ssnas.data.views: batched seeded augmentation and the registered view recipes."""

from __future__ import annotations

import colorsys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssnas.data import views as V
from ssnas.data.views import VIEWS, byol_views, crop_flip_views, csnas_views, simclr_views

EXPECTED_VIEWS = {"simclr": 2, "byol": 2, "crop-flip": 2, "identity": 1, "csnas": 3}
RANDOM_RECIPES = ["simclr", "byol", "crop-flip", "csnas"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unnormalize(view: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return view * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)  # (3,) -> (1,3,1,1)


def _stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if name == "csnas":
        return V.IMAGENET_MEAN, V.IMAGENET_STD
    return V.CIFAR_MEAN, V.CIFAR_STD


def test_registry_holds_the_five_recipes() -> None:
    assert VIEWS.names() == sorted(EXPECTED_VIEWS)


@pytest.mark.parametrize("name", sorted(EXPECTED_VIEWS))
def test_views_are_normalised_float_batches(name: str, tiny_images: torch.Tensor) -> None:
    views = VIEWS.create(name)(tiny_images, _generator(0))
    assert len(views) == EXPECTED_VIEWS[name]
    mean, std = _stats(name)
    for view in views:
        assert view.shape == (16, 3, 32, 32) and view.dtype == torch.float32
        pixels = _unnormalize(view, mean, std)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_identity_is_exact_normalisation(tiny_images: torch.Tensor) -> None:
    (view,) = VIEWS.create("identity")(tiny_images, _generator(0))
    expected = (tiny_images.float() / 255 - torch.tensor(V.CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(V.CIFAR_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(view, expected)


@pytest.mark.parametrize("name", RANDOM_RECIPES)
def test_same_generator_seed_gives_same_views(name: str, tiny_images: torch.Tensor) -> None:
    maker = VIEWS.create(name)
    torch.manual_seed(1)
    first = maker(tiny_images, _generator(7))
    torch.manual_seed(2)  # the global random state must play no part
    second = maker(tiny_images, _generator(7))
    other = maker(tiny_images, _generator(8))
    for a, b, c in zip(first, second, other):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(first, other))


@pytest.mark.parametrize("name", RANDOM_RECIPES)
def test_views_of_a_pair_differ(name: str, tiny_images: torch.Tensor) -> None:
    views = VIEWS.create(name)(tiny_images, _generator(0))
    assert not torch.equal(views[0], views[1])
    assert not torch.equal(views[-2], views[-1])


# ------------------------------------------------------------------- geometry by hand


@pytest.fixture
def ramp() -> torch.Tensor:
    """(2,3,32,32) float images whose pixels are all distinct."""
    values = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32) / (2 * 3 * 32 * 32)
    return values.view(2, 3, 32, 32)  # (6144,) -> (2,3,32,32)


def test_full_box_with_flips_mirrors_exactly(ramp: torch.Tensor) -> None:
    box = torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 2)
    yes, no = torch.tensor([True, True]), torch.tensor([False, False])
    torch.testing.assert_close(V.crop_resize(ramp, box, 32), ramp)
    torch.testing.assert_close(V.crop_resize(ramp, box, 32, hflip=yes), ramp.flip(-1))
    torch.testing.assert_close(V.crop_resize(ramp, box, 32, vflip=yes, hflip=no), ramp.flip(-2))


def test_box_selects_the_region_without_dark_edges(ramp: torch.Tensor) -> None:
    quadrant = V.crop_resize(ramp, torch.tensor([[16.0, 0.0, 16.0, 16.0]] * 2), 16)
    torch.testing.assert_close(quadrant, ramp[:, :, :16, 16:])
    constant = torch.full((2, 3, 32, 32), 0.7)
    corner = V.crop_resize(constant, torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2), 32)  # upscaled 4x at the edge
    torch.testing.assert_close(corner, constant)


def test_centre_patch_is_the_centre(ramp: torch.Tensor) -> None:
    patch = V.PatchCrop(16, fraction=0.5)(ramp, _generator(0))
    torch.testing.assert_close(patch, ramp[:, :, 8:24, 8:24])


def test_random_resized_crop_of_whole_image_is_identity_or_flip(ramp: torch.Tensor) -> None:
    whole = dict(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(V.RandomResizedCrop(**whole, hflip=0.0)(ramp, _generator(0)), ramp)
    torch.testing.assert_close(V.RandomResizedCrop(**whole, hflip=1.0)(ramp, _generator(0)), ramp.flip(-1))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), low=st.floats(0.05, 1.0))
def test_random_resized_crop_area_stays_in_scale(seed: int, low: float) -> None:
    """Read each crop's width off an image whose pixels hold their column index."""
    size = 32
    columns = torch.arange(size, dtype=torch.float32).expand(64, 3, size, size) / size  # (64,3,32,32)
    crop = V.RandomResizedCrop(size, scale=(low, 1.0), hflip=0.0)(columns.contiguous(), _generator(seed))
    widths = (crop[:, 0, 0, -1] - crop[:, 0, 0, 0]) * size * size / (size - 1)  # span of sampled columns, pixels
    assert (widths <= size + 1e-3).all()
    assert (widths >= (low * 3 / 4) ** 0.5 * size - 1.5).all()  # w = sqrt(area * ratio), ratio >= 3/4


def test_pad_crop_is_a_shift_of_the_zero_padded_image(ramp: torch.Tensor) -> None:
    images = ramp.repeat(8, 1, 1, 1)  # (16,3,32,32)
    out = V.PadCrop(32, padding=4)(images, _generator(3))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for b in range(len(images)):  # checking only: compare with every shift and flip
        candidates = [
            window.flip(-1) if flip else window
            for i in range(9)
            for j in range(9)
            for window in [padded[b, :, i : i + 32, j : j + 32]]
            for flip in (False, True)
        ]
        assert any(torch.allclose(out[b], c, atol=1e-5) for c in candidates)
    assert not torch.allclose(out, images)


# ---------------------------------------------------------------------- colour by hand


def test_hue_shift_matches_colorsys() -> None:
    pixels = torch.rand(1, 3, 4, 4, generator=_generator(0))
    shifted = V.adjust_hue(pixels, torch.tensor([0.3]))
    for row in range(4):
        for col in range(4):
            h, s, v = colorsys.rgb_to_hsv(*pixels[0, :, row, col].tolist())
            expected = colorsys.hsv_to_rgb((h + 0.3) % 1.0, s, v)
            assert shifted[0, :, row, col].tolist() == pytest.approx(expected, abs=1e-5)
    torch.testing.assert_close(V.adjust_hue(pixels, torch.tensor([0.0])), pixels)


def test_colour_factors_do_what_they_say() -> None:
    pixels = torch.rand(2, 3, 8, 8, generator=_generator(1))
    gray = V.grayscale(pixels).expand_as(pixels)
    torch.testing.assert_close(V.adjust_saturation(pixels, torch.zeros(2)), gray)
    torch.testing.assert_close(V.adjust_brightness(pixels, torch.full((2,), 0.5)), pixels * 0.5)
    flat = V.adjust_contrast(pixels, torch.zeros(2))
    assert torch.allclose(flat, flat[:, :, :1, :1].expand_as(flat))


def test_jitter_and_grayscale_probabilities(tiny_images: torch.Tensor) -> None:
    pixels = V.to_unit_float(tiny_images)
    assert torch.equal(V.ColorJitter(p=0.0)(pixels, _generator(0)), pixels)
    assert not torch.equal(V.ColorJitter(p=1.0)(pixels, _generator(0)), pixels)
    gray = V.RandomGrayscale(1.0)(pixels, _generator(0))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


def test_blur_smooths_and_keeps_constant_images() -> None:
    noise = torch.rand(4, 3, 16, 16, generator=_generator(2))
    blurred = V.GaussianBlur(1.0, kernel_size=5, sigma=(1.0, 2.0))(noise, _generator(0))
    assert blurred.std() < 0.8 * noise.std()
    constant = torch.full((2, 3, 16, 16), 0.3)
    torch.testing.assert_close(V.GaussianBlur(1.0, 5)(constant, _generator(0)), constant)


def test_byol_views_are_asymmetric() -> None:
    white = torch.full((32, 3, 32, 32), 255, dtype=torch.uint8)
    maker = byol_views(solarize=(0.0, 1.0))
    first, second = (_unnormalize(v, V.CIFAR_MEAN, V.CIFAR_STD) for v in maker(white, _generator(0)))
    assert second.max() <= 0.5 + 1e-5  # every view-2 image solarized
    assert (first.amin(dim=(1, 2, 3)) > 0.55).all()  # no view-1 image solarized (brightness >= 0.6)
    default = byol_views()
    blur_p = [steps[-2].p for steps in default.pipelines]
    solarize_p = [steps[-1].p for steps in default.pipelines]
    assert blur_p == [1.0, 0.1] and solarize_p == [0.0, 0.2]


def test_simclr_and_crop_flip_take_their_parameters(tiny_images: torch.Tensor) -> None:
    assert simclr_views(num_views=4).num_views == 4
    assert simclr_views(size=24)(tiny_images, _generator(0))[0].shape == (16, 3, 24, 24)
    same = crop_flip_views(padding=0)(tiny_images, _generator(0))[0]
    expected = V.normalize(V.to_unit_float(tiny_images), V.CIFAR_MEAN, V.CIFAR_STD)
    flipped = expected.flip(-1)
    per_image = [torch.allclose(s, e, atol=1e-4) or torch.allclose(s, f, atol=1e-4) for s, e, f in zip(same, expected, flipped)]
    assert all(per_image)


def test_csnas_views_hold_original_and_shuffled_patches(tiny_images: torch.Tensor) -> None:
    images = tiny_images.repeat(4, 1, 1, 1)  # (64,3,32,32)
    original, patch_a, patch_b = csnas_views()(images, _generator(0))
    pixels = V.to_unit_float(images)
    centre = V.normalize(V.PatchCrop(32, 0.5)(pixels, _generator(0)), V.IMAGENET_MEAN, V.IMAGENET_STD)
    a_is_centre = torch.isclose(patch_a, centre, atol=1e-5).flatten(1).all(1)
    b_is_centre = torch.isclose(patch_b, centre, atol=1e-5).flatten(1).all(1)
    assert torch.equal(a_is_centre, ~b_is_centre)  # exactly one patch is the centre crop
    assert 0 < a_is_centre.sum() < len(images)  # and the order is shuffled
    orientations = [
        pixels,
        pixels.flip(-1),
        pixels.flip(-2),
        pixels.flip(-1).flip(-2),
    ]
    raw = _unnormalize(original, V.IMAGENET_MEAN, V.IMAGENET_STD)
    matches = torch.stack([torch.isclose(raw, o, atol=1e-5).flatten(1).all(1) for o in orientations])  # (4,B)
    assert matches.any(0).all() and (matches.sum(1) > 0).sum() >= 3  # flipped both ways, not always


def test_rejects_float_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        simclr_views()(torch.zeros(2, 3, 32, 32), _generator(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(EXPECTED_VIEWS))
def test_views_run_on_cuda(name: str, tiny_images: torch.Tensor) -> None:
    maker = VIEWS.create(name)
    on_cpu = maker(tiny_images, _generator(0))
    on_gpu = maker(tiny_images.cuda(), _generator(0))  # CPU generator, CUDA images
    for cpu_view, gpu_view in zip(on_cpu, on_gpu):
        assert gpu_view.is_cuda
        torch.testing.assert_close(gpu_view.cpu(), cpu_view, atol=1e-4, rtol=1e-4)
    cuda_generator = torch.Generator(device="cuda").manual_seed(0)
    first = maker(tiny_images.cuda(), cuda_generator)
    again = maker(tiny_images.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(first, again))

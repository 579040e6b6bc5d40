"""Presets fit the folder: training / held-out counts as shares with caps, above the strategy's floor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ssnas.data.split import Share, fit_split
from ssnas.errors import UserError
from ssnas.run import PRESET_SPLITS, resolve, search_config
from ssnas.strategies.settings import SUPERNET_FLOOR
from ssnas.strategies.settings import ImageFloor
from ssnas.run.task import fit_data

QUICK = ImageFloor(*SUPERNET_FLOOR).within(*PRESET_SPLITS["quick"])  # the quick preset within setn's floor


@pytest.mark.parametrize(("total", "train", "holdout"), [
    (768, 512, 256), (2000, 1600, 400), (5000, 4000, 1000), (50000, 5000, 1024),
])  # fmt: skip
def test_quick_preset_takes_shares_of_the_folder(total: int, train: int, holdout: int) -> None:
    split = fit_split(total, *QUICK)
    assert (split.num_images, split.holdout_images) == (train, holdout)
    assert split.num_images + split.holdout_images <= total
    assert f"{total:,} images" in split.reason and "80%" in split.reason


def test_too_small_folder_names_the_minimum() -> None:
    with pytest.raises(UserError, match="has 700 images; a search needs at least 768"):
        fit_split(700, *QUICK)


def test_a_given_count_is_kept_and_the_other_gets_what_is_left() -> None:
    split = fit_split(2000, 1700, QUICK[1])
    assert (split.num_images, split.holdout_images) == (1700, 300)
    assert "given" in split.reason
    with pytest.raises(UserError, match="at least 2,156"):
        fit_split(2000, 1900, QUICK[1])
    with pytest.raises(UserError, match="needs at least 2,100"):
        fit_split(2000, 1500, 600)


def test_share_floor_and_cap() -> None:
    assert Share(0.01, 128).of(1000) == 128
    assert Share(0.5, 10, 100).of(1000) == 100


def test_a_floor_raises_the_shares_floor_and_a_cap_below_it() -> None:
    train, holdout = ImageFloor(0, 2048).within(*PRESET_SPLITS["quick"])
    assert (train.floor, holdout.floor, holdout.cap) == (0, 2048, 2048)
    assert train.fraction == 0.8 and holdout.fraction == 0.2


@pytest.mark.parametrize(("options", "floor"), [
    (dict(), (0, 64)),  # nb201's default: evolution, one rating batch of held-out images
    (dict(strategy="evolution", rating_batch_size=16), (0, 16)),
    (dict(space="nats-size"), (0, 16)),
    (dict(strategy="two-stage"), (64, 64)),  # the judge's SimCLR batch (128 passes / 2 views); its signals' 64
    (dict(strategy="two-stage", space="darts"), (32, 64)),  # darts' judge trains rotation: 128 passes / 4
    (dict(strategy="setn"), SUPERNET_FLOOR), (dict(strategy="bossnas"), SUPERNET_FLOOR),
    (dict(strategy="tpe"), (128, 256)), (dict(strategy="random", batch_size=32), (32, 256)),
])  # fmt: skip
def test_each_strategy_states_its_floor(options: dict[str, object], floor: tuple[int, int]) -> None:
    config = resolve(search_config(**options))
    assert config.strategy.image_floor(config.run.space) == ImageFloor(*floor)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Flat folders of 40 and 300 random 32x32 PNGs."""
    made = {}
    for count in (40, 300):
        folder = tmp_path_factory.mktemp(f"flat{count}")
        generator = torch.Generator().manual_seed(count)
        for i in range(count):
            pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=generator).numpy()
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
        made[count] = folder
    return made


def _fit(folder: Path, **options: object) -> tuple[int | None, int | None, str]:
    config, _, reason = fit_data(resolve(search_config(data=str(folder), **options)))
    return config.run.num_images, config.run.holdout_images, reason


def test_the_default_search_fits_a_300_image_folder(folders: dict[int, Path], monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("SSNAS_CACHE", str(tmp_path / "cache"))
    train, holdout, reason = _fit(folders[300])
    assert (train, holdout) == (236, 64)  # the held-out share (60) is below evolution's rating batch
    assert "64 held-out (20% of the folder, floor 64" in reason
    assert _fit(folders[300], strategy="two-stage")[:2] == (236, 64)


@pytest.mark.parametrize(("options", "fragments"), [
    (dict(strategy="setn"), ["strategy 'setn' needs at least 768 images (512 training + 256 held-out)", "has 300",
                             "'evolution' runs on it: drop --strategy or pass --strategy evolution"]),
    (dict(strategy="tpe"), ["strategy 'tpe' needs at least 384 images", "'evolution' runs on it"]),
    (dict(space="mbconv"), ["strategy 'setn' needs at least 768", "'evolution' runs on it: pass --strategy evolution"]),
])  # fmt: skip
def test_a_folder_below_the_floor_names_it_and_a_strategy_that_runs(
    folders: dict[int, Path], options: dict[str, object], fragments: list[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("SSNAS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError) as refused:
        _fit(folders[300], **options)
    message = str(refused.value)
    assert "\n" not in message and all(fragment in message for fragment in fragments), message


def test_a_folder_below_evolutions_floor_is_refused(folders: dict[int, Path], monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("SSNAS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match=r"strategy 'evolution' needs at least 64 images \(0 training \+ 64 held-out\)"
                       r".* has 40 images; use a larger folder or a smaller --rating-batch-size$"):  # fmt: skip
        _fit(folders[40])
    assert _fit(folders[40], rating_batch_size=16)[:2] == (24, 16)
    with pytest.raises(UserError, match="strategy 'two-stage' needs at least 128 images .*; use a larger folder$"):
        _fit(folders[40], strategy="two-stage")
    assert _fit(folders[40], strategy="setn", num_images=24, holdout_images=16)[:2] == (24, 16)  # given: kept

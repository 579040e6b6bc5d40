"""Presets fit the folder: training / held-out counts as shares with floors and caps."""

from __future__ import annotations

import pytest

from ssnas.data.split import Share, fit_split
from ssnas.errors import UserError
from ssnas.run import PRESET_SPLITS

QUICK = PRESET_SPLITS["quick"]


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

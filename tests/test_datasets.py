"""ssnas.data.datasets: CIFAR pickles, opt-in download, image folders and their cache."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ssnas.data import datasets
from ssnas.data.datasets import ImageSet, load_dataset, load_image_folder
from ssnas.errors import UserError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes its decoded folders to its own SSNAS_CACHE."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SSNAS_CACHE", str(folder))
    return folder


# ---------------------------------------------------------------- official CIFAR format


def _pixels(n: int, start: int) -> np.ndarray:
    """(n, 3072) uint8 rows: image k has channel c filled with start + 10*k + c."""
    rows = np.zeros((n, 3, 1024), dtype=np.uint8)
    for k in range(n):
        for c in range(3):
            rows[k, c] = start + 10 * k + c
    rows[:, 0, 1] = 255  # red of pixel (row 0, column 1): pins the channel-major, row-major layout
    return rows.reshape(n, 3072)


def _dump(path: Path, content: dict[bytes, object]) -> None:
    """Written as the official files are: a protocol-2 pickle with bytes keys."""
    with path.open("wb") as stream:
        pickle.dump(content, stream, protocol=2)


def write_cifar10(root: Path, per_batch: int = 2) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        _dump(
            folder / f"data_batch_{b}",
            {
                b"batch_label": f"training batch {b} of 5".encode(),
                b"labels": [(b + k) % 10 for k in range(per_batch)],
                b"data": _pixels(per_batch, start=b),
                b"filenames": [f"img_{b}_{k}.png".encode() for k in range(per_batch)],
            },
        )
    _dump(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": [9, 0, 3], b"data": _pixels(3, 100)})
    _dump(folder / "batches.meta", {b"num_cases_per_batch": per_batch, b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072})
    return folder


def write_cifar100(root: Path) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", 4), ("test", 2)):
        _dump(folder / split, {b"fine_labels": [99 - k for k in range(n)], b"coarse_labels": [k for k in range(n)], b"data": _pixels(n, 0)})
    _dump(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)], b"coarse_label_names": [b"c"] * 20})
    return folder


def test_cifar10_reads_official_pickles(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    train = load_dataset("cifar10", "train", root=tmp_path)
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [(b + k) % 10 for b in range(1, 6) for k in range(2)]
    assert train.classes == CIFAR10_NAMES
    # batch 2, image 1: channels filled with 2 + 10 + c, pixel (0, 1) red set to 255
    image = train.images[3]
    assert image[:, 5, 5].tolist() == [12, 13, 14]
    assert image[0, 0, 1] == 255 and image[0, 1, 0] == 12
    test = load_dataset("CIFAR-10", "test", root=tmp_path)
    assert len(test) == 3 and test.labels.tolist() == [9, 0, 3] and test.source == "cifar10/test"


def test_cifar100_uses_fine_labels_and_names(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    train = load_dataset("cifar100", root=tmp_path)
    assert train.labels.tolist() == [99, 98, 97, 96]
    assert len(train.classes) == 100 and train.classes[99] == "fine99"
    assert len(load_dataset("cifar100", "test", root=tmp_path)) == 2


def test_cifar_resolution_resizes(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    images = load_dataset("cifar10", "test", root=tmp_path, resolution=16).images
    assert images.shape == (3, 3, 16, 16) and images.dtype == torch.uint8
    assert images[0, 1, 8, 8] == 101  # a constant channel stays constant


def test_cifar_missing_folder_names_folder_and_flag(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        load_dataset("cifar10", root=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "cifar-10-batches-py") in message and "--download" in message


def test_cifar_env_data_dir_is_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10(tmp_path)
    monkeypatch.setenv("SSNAS_DATA", str(tmp_path))
    assert len(load_dataset("cifar10", "test")) == 3


def test_cifar_unknown_split_is_user_error(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(UserError, match="split"):
        load_dataset("cifar10", "valid", root=tmp_path)


# --------------------------------------------------------------------------- download


def _archive_of(folder: Path, destination: Path) -> str:
    """tar.gz `folder` (as its own name) into `destination`; return the md5."""
    with tarfile.open(destination, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return hashlib.md5(destination.read_bytes()).hexdigest()


@pytest.fixture
def fake_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A local cifar-10-python.tar.gz; `_fetch` copies it instead of using the network."""
    source = write_cifar10(tmp_path / "source")
    archive = tmp_path / "fake.tar.gz"
    md5 = _archive_of(source, archive)
    monkeypatch.setitem(datasets.CIFAR, "cifar10", dataclasses.replace(datasets.CIFAR["cifar10"], md5=md5))
    fetched: list[str] = []

    def fetch(url: str, destination: Path) -> None:
        fetched.append(url)
        shutil.copyfile(archive, destination)

    monkeypatch.setattr(datasets, "_fetch", fetch)
    return archive, fetched


def test_download_verifies_md5_and_extracts(tmp_path: Path, fake_archive: tuple[Path, list[str]]) -> None:
    _, fetched = fake_archive
    root = tmp_path / "data"
    dataset = load_dataset("cifar10", "train", root=root, download=True)
    assert len(dataset) == 10 and fetched == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert (root / "cifar-10-python.tar.gz").is_file()
    shutil.rmtree(root / "cifar-10-batches-py")
    load_dataset("cifar10", "test", root=root, download=True)  # a verified archive on disk is reused
    assert len(fetched) == 1


def test_download_with_wrong_md5_is_rejected(
    tmp_path: Path, fake_archive: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(datasets.CIFAR, "cifar10", dataclasses.replace(datasets.CIFAR["cifar10"], md5="0" * 32))
    root = tmp_path / "data"
    with pytest.raises(UserError, match="md5"):
        load_dataset("cifar10", root=root, download=True)
    assert not (root / "cifar-10-batches-py").exists()
    assert not (root / "cifar-10-python.tar.gz").exists()


def test_real_md5_constants_are_the_official_ones() -> None:
    assert datasets.CIFAR["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert datasets.CIFAR["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"


def test_download_offline_is_one_line_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, destination: Path) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(datasets, "_fetch", offline)
    with pytest.raises(UserError) as error:
        load_dataset("cifar100", root=tmp_path, download=True)
    assert "no route to host" in str(error.value) and str(tmp_path / "cifar-100-python") in str(error.value)
    assert "\n" not in str(error.value)


def test_unsafe_archive_entry_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"owned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.CIFAR, "cifar10", dataclasses.replace(datasets.CIFAR["cifar10"], md5=md5))
    monkeypatch.setattr(datasets, "_fetch", lambda url, destination: shutil.copyfile(archive, destination))
    with pytest.raises(UserError, match="unsafe"):
        load_dataset("cifar10", root=tmp_path / "data", download=True)
    assert not (tmp_path / "escaped.txt").exists()


# ----------------------------------------------------------------------- image folders


@pytest.fixture(scope="module")
def real_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 real CIFAR-10 JPEGs per class (300 in all) copied into class folders."""
    root = tmp_path_factory.mktemp("cifar-subset")
    for class_folder in sorted((shared_data / "cifar10-jpeg" / "train").iterdir()):
        (root / class_folder.name).mkdir()
        for file in sorted(class_folder.iterdir())[:30]:
            shutil.copy2(file, root / class_folder.name / file.name)
    return root


@pytest.mark.realdata
def test_class_folders_give_sorted_labels(real_subset: Path) -> None:
    dataset = load_image_folder(real_subset)
    assert dataset.images.shape == (300, 3, 32, 32) and dataset.images.dtype == torch.uint8
    assert dataset.classes == CIFAR10_NAMES
    assert torch.bincount(dataset.labels).tolist() == [30] * 10
    first = np.array(Image.open(real_subset / "airplane" / "0000.jpg").convert("RGB"))
    assert torch.equal(dataset.images[0], torch.from_numpy(first).permute(2, 0, 1))  # (H,W,3) -> (3,H,W)
    last = np.array(Image.open(sorted((real_subset / "truck").iterdir())[-1]).convert("RGB"))
    assert torch.equal(dataset.images[-1], torch.from_numpy(last).permute(2, 0, 1))


@pytest.mark.realdata
def test_second_load_reads_cache_until_a_file_changes(real_subset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(real_subset, folder)
    first = load_image_folder(folder)
    decode = datasets._decode_folder

    def must_not_decode(*args: object) -> object:
        raise AssertionError("decoded again although the folder did not change")

    monkeypatch.setattr(datasets, "_decode_folder", must_not_decode)
    assert torch.equal(load_image_folder(folder).images, first.images)
    edited = folder / "cat" / "0000.jpg"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(edited, quality=100)
    os.utime(edited, ns=(1, 1))
    monkeypatch.setattr(datasets, "_decode_folder", decode)
    changed = load_image_folder(folder)
    pixel = changed.images[changed.labels == 3][0, :, 0, 0].int()
    assert (pixel - torch.tensor([200, 10, 10])).abs().max() <= 3  # JPEG rounding


@pytest.mark.realdata
def test_process_pool_decodes_like_one_process(real_subset: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    serial = load_image_folder(real_subset, workers=1)
    monkeypatch.setenv("SSNAS_CACHE", str(tmp_path / "other-cache"))
    monkeypatch.setattr(datasets, "_PARALLEL_FROM", 10)
    parallel = load_image_folder(real_subset, workers=2)
    assert torch.equal(serial.images, parallel.images) and torch.equal(serial.labels, parallel.labels)


@pytest.mark.realdata
@pytest.mark.slow
def test_full_real_train_split(shared_data: Path) -> None:
    dataset = load_dataset(str(shared_data / "cifar10-jpeg"), "train")
    assert dataset.images.shape == (50000, 3, 32, 32)
    assert dataset.classes == CIFAR10_NAMES
    assert torch.bincount(dataset.labels).tolist() == [5000] * 10
    assert dataset.source.endswith("train") and dataset.num_skipped == 0


def test_flat_folder_of_mixed_images_is_unlabeled_rgb(tmp_path: Path) -> None:
    Image.new("RGB", (50, 40), (200, 10, 10)).save(tmp_path / "a.png")
    Image.new("L", (20, 20), 77).save(tmp_path / "b.jpg", quality=100)
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(tmp_path / "c.png")  # fully transparent -> white
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "d.BMP")
    Image.new("RGB", (64, 64), (0, 255, 0)).save(tmp_path / "e.webp", lossless=True)
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = load_image_folder(tmp_path, resolution=16)
    assert dataset.images.shape == (5, 3, 16, 16) and dataset.labels is None and dataset.classes == []
    centre = dataset.images[:, :, 8, 8].tolist()
    assert centre[0] == [200, 10, 10] and centre[2] == [255, 255, 255] and centre[4] == [0, 255, 0]
    assert centre[3] == [0, 0, 255]
    assert abs(centre[1][0] - 77) <= 1 and centre[1][0] == centre[1][1] == centre[1][2]


def _truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "ok" / "good.png")
    _truncated_jpeg(tmp_path / "ok" / "broken.jpg")
    with pytest.raises(UserError, match="broken.jpg"):
        load_image_folder(tmp_path)


def test_skip_corrupt_warns_and_counts(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    Image.new("RGB", (32, 32), (5, 5, 5)).save(tmp_path / "x" / "good.png")
    _truncated_jpeg(tmp_path / "x" / "broken.jpg")
    for _ in range(2):  # once decoded, once from the cache: both warn and count
        with pytest.warns(UserWarning, match="skipped 1"):
            dataset = load_image_folder(tmp_path, skip_corrupt=True)
        assert len(dataset) == 1 and dataset.num_skipped == 1 and dataset.labels.tolist() == [0]
    with pytest.raises(UserError, match="broken.jpg"):  # a cached entry still refuses without the flag
        load_image_folder(tmp_path)


def test_empty_missing_and_mixed_folders_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no images"):
        load_image_folder(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset(str(tmp_path / "nowhere"))
    (tmp_path / "cls").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "cls" / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "loose.png")
    with pytest.raises(UserError, match="mixes"):
        load_image_folder(tmp_path)


def test_split_subfolders_are_picked_by_split(tmp_path: Path) -> None:
    for split, count in (("train", 3), ("test", 2)):
        for k in range(count):
            (tmp_path / split / "only").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (k, k, k)).save(tmp_path / split / "only" / f"{k}.png")
    assert len(load_dataset(str(tmp_path), "train")) == 3
    assert len(load_dataset(str(tmp_path), "test")) == 2
    shutil.rmtree(tmp_path / "test")
    with pytest.raises(UserError, match="no test/ subfolder"):
        load_dataset(str(tmp_path), "test")


# ------------------------------------------------------------------------ subset/split


def _numbered(n: int) -> ImageSet:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()  # (n,) -> (n,3,2,2)
    return ImageSet(images, torch.arange(n), [], "numbers")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 200), fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**31))
def test_split_is_a_seeded_partition(n: int, fraction: float, seed: int) -> None:
    dataset = _numbered(n)
    first, second = dataset.split(fraction, seed)
    assert len(first) == round(fraction * n) and len(first) + len(second) == n
    assert sorted(first.labels.tolist() + second.labels.tolist()) == list(range(n))
    assert torch.equal(first.images[:, 0, 0, 0].long(), first.labels % 256)  # images follow their labels
    assert torch.equal(dataset.split(fraction, seed)[0].labels, first.labels)


def test_subset_depends_on_seed_only() -> None:
    dataset = _numbered(100)
    a, b, c = dataset.subset(10, 1), dataset.subset(10, 1), dataset.subset(10, 2)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    assert len(set(a.labels.tolist())) == 10
    with pytest.raises(UserError):
        dataset.subset(101, 0)

"""Image datasets held in memory as one uint8 tensor: CIFAR-10/100 and image folders.

Everything loads into an `ImageSet` (images (N,3,H,W) uint8, optional labels), which is
small enough for CIFAR-sized data (50,000 x 3 x 32 x 32 = 147 MiB) and lets the view
recipes in `ssnas.data.views` augment whole batches at once.

* CIFAR-10/100 are read from the official "python version" pickles (Krizhevsky, 2009),
  optionally downloaded from the official site and checked against the published md5.
* An image folder is either `root/<class>/**/*.jpg` (labels = sorted folder names) or a
  flat folder of unlabeled images. It is decoded once with Pillow and cached on disk
  (`ssnas.paths.cache_dir()`), keyed by the folder's content listing and the resolution.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ssnas.data import cache
from ssnas.errors import UserError
from ssnas.paths import data_dir, expand_user

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
SPLITS = ("train", "test")
_FOLDER_CACHE = "image-folder"
_FOLDER_FORMAT = 1  # bump when decoding changes, so old cache entries are no longer read
_PARALLEL_FROM = 2048  # decode with a process pool from this many files on


@dataclass
class ImageSet:
    """A labelled or unlabeled image set in memory.

    Attributes:
        images: (N,C,H,W) uint8.
        labels: (N,) int64 class indices into `classes`, or None when unlabeled.
        classes: class names (empty when unlabeled).
        source: where the images came from (a dataset name and split, or a folder).
        num_skipped: corrupt files left out when loaded with `skip_corrupt=True`.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str]
    source: str
    num_skipped: int = 0

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N,C,H,W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must be ({len(self.images)},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    def select(self, index: torch.Tensor) -> ImageSet:
        """The images at `index` ((K,) int64), in that order."""
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.images[index], labels, list(self.classes), self.source, self.num_skipped)

    def subset(self, n: int, seed: int) -> ImageSet:
        """`n` images drawn without replacement by a `torch.Generator` seeded with `seed`."""
        if not 0 < n <= len(self):
            raise UserError(f"subset size {n} must be between 1 and {len(self)} (the size of {self.source})")
        return self.select(_permutation(len(self), seed)[:n])

    def per_class(self, n: int, seed: int) -> ImageSet:
        """`n` images of every class, drawn by one seeded permutation (SimCLR's 1 % / 10 % subsets are
        class-balanced the same way); UserError when unlabeled or a class has fewer than `n`."""
        if self.labels is None:
            raise UserError(f"{self.source} has no labels (one subfolder per class is needed for labels per class)")
        order = _permutation(len(self), seed)
        chosen = []
        for index, name in enumerate(self.classes):
            members = order[self.labels[order] == index]
            if len(members) < n:
                raise UserError(f"class {name!r} of {self.source} has {len(members)} image(s), fewer than the "
                                f"{n} labels per class asked for")  # fmt: skip
            chosen.append(members[:n])
        return self.select(torch.sort(torch.cat(chosen)).values)

    def split(self, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
        """Two disjoint random parts; the first holds `round(fraction * N)` images."""
        if not 0.0 < fraction < 1.0:
            raise UserError(f"split fraction {fraction} must lie strictly between 0 and 1")
        order = _permutation(len(self), seed)
        cut = round(fraction * len(self))
        return self.select(order[:cut]), self.select(order[cut:])


def skipped_note(count: int) -> str:
    """What a log line adds about the `count` unreadable files --skip-corrupt left out ("" for none)."""
    return f"; {count:,} unreadable image file(s) left out (--skip-corrupt)" if count else ""


def _permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class CifarArchive:
    """Where the official python-format CIFAR files live and what they contain."""

    title: str
    url: str
    md5: str
    folder: str
    files: dict[str, tuple[str, ...]]
    label_key: str
    meta_file: str
    names_key: str


CIFAR: dict[str, CifarArchive] = {
    "cifar10": CifarArchive(
        title="CIFAR-10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        label_key="labels",
        meta_file="batches.meta",
        names_key="label_names",
    ),
    "cifar100": CifarArchive(
        title="CIFAR-100",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        files={"train": ("train",), "test": ("test",)},
        label_key="fine_labels",
        meta_file="meta",
        names_key="fine_label_names",
    ),
}


def load_cifar(name: str, split: str = "train", root: str | Path | None = None, download: bool = False) -> ImageSet:
    """Read CIFAR-10 or CIFAR-100 from the official python-format pickles.

    Args:
        name: "cifar10" or "cifar100".
        split: "train" (50,000 images) or "test" (10,000).
        root: folder holding `cifar-10-batches-py/` or `cifar-100-python/`; default `data_dir()`.
        download: fetch and verify the official archive when the folder is missing.

    Returns:
        ImageSet with images (N,3,32,32) uint8 and fine labels (N,) int64.
    """
    archive = CIFAR[name]
    _check_split(split)
    root = Path(root) if root is not None else data_dir()
    folder = root / archive.folder
    if not folder.is_dir():
        if not download:
            raise UserError(
                f"{archive.title} not found: put the official python-version files in {folder} "
                f"or pass --download (download=True) to fetch them"
            )
        download_cifar(name, root)
    images, labels = [], []
    for file_name in archive.files[split]:
        batch = _read_pickle(folder / file_name)
        data = np.asarray(batch["data"], dtype=np.uint8)
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32)))  # (n, 3072) -> (n,3,32,32), channel-major
        labels.append(torch.as_tensor(batch[archive.label_key], dtype=torch.int64))
    meta = _read_pickle(folder / archive.meta_file)
    classes = [_text(label) for label in meta[archive.names_key]]
    return ImageSet(torch.cat(images), torch.cat(labels), classes, f"{name}/{split}")


def _read_pickle(path: Path) -> dict[str, Any]:
    """An official CIFAR pickle (Python 2, bytes keys) as a dict with str keys."""
    try:
        with path.open("rb") as stream:
            content = pickle.load(stream, encoding="bytes")
    except FileNotFoundError:
        raise UserError(f"missing CIFAR file {path}; the folder is incomplete") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise UserError(f"corrupt CIFAR file {path}: {error}") from None
    return {_text(key): value for key, value in content.items()}


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _fetch(url: str, destination: Path) -> None:
    """Copy `url` to `destination` (the one network call; tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as stream:
        shutil.copyfileobj(response, stream)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_cifar(name: str, root: str | Path) -> Path:
    """Download the official archive into `root`, verify its md5, extract it; return the folder."""
    archive = CIFAR[name]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / archive.url.rsplit("/", 1)[-1]
    if not target.is_file() or _md5(target) != archive.md5:
        partial = target.with_name(target.name + ".part")
        try:
            _fetch(archive.url, partial)
        except (urllib.error.URLError, OSError) as error:
            partial.unlink(missing_ok=True)
            reason = getattr(error, "reason", error)
            raise UserError(
                f"could not download {archive.url} ({reason}); put the official files in {root / archive.folder} by hand"
            ) from None
        os.replace(partial, target)
    checksum = _md5(target)
    if checksum != archive.md5:
        target.unlink()
        raise UserError(f"{archive.url} downloaded with md5 {checksum}, expected {archive.md5}; file removed, try again")
    _extract_tar(target, root)
    folder = root / archive.folder
    if not folder.is_dir():
        raise UserError(f"{target} did not contain the folder {archive.folder}/")
    return folder


def _extract_tar(archive: Path, destination: Path) -> None:
    """Extract regular files and folders only, refusing absolute paths, `..` and links."""
    destination = destination.resolve()
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            target = (destination / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not target.is_relative_to(destination):
                raise UserError(f"refusing unsafe entry {member.name!r} in {archive}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, members=members, filter="data")
        else:  # pragma: no cover - Python without PEP 706 filters; members were checked above
            tar.extractall(destination, members=members)


# --------------------------------------------------------------------- image folders


def load_image_folder(
    path: str | Path, resolution: int = 32, skip_corrupt: bool = False, workers: int = 2
) -> ImageSet:
    """Decode a folder of images to (N,3,resolution,resolution) uint8, cached on disk.

    Layout: `path/<class>/**/<image>` gives labels from the sorted class-folder names;
    a flat `path/<image>` folder gives an unlabeled set. Images (jpg, jpeg, png, bmp, webp;
    any mode, any size) are converted to RGB (transparency over white), resized so the
    shorter side is `resolution`, and centre-cropped to a square.

    Args:
        path: the folder.
        resolution: side of the square output images.
        skip_corrupt: leave unreadable files out with a warning instead of raising UserError.
        workers: decoding processes for folders of 2048 files or more.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist or is not a folder")
    listing, labels, classes = _scan(folder)
    key = cache.fingerprint(listing, _FOLDER_CACHE, _FOLDER_FORMAT, resolution)
    entry = cache.load_entry(_FOLDER_CACHE, key)
    if entry is None:
        files = [rel for rel, _, _ in listing]
        entry = _decode_folder(folder, files, labels, classes, resolution, workers)
        cache.save_entry(_FOLDER_CACHE, key, entry)
    skipped: list[str] = entry["skipped"]
    if skipped and not skip_corrupt:
        more = f" and {len(skipped) - 1:,} more" if len(skipped) > 1 else ""
        raise UserError(f"cannot read image {_shown(folder / skipped[0])}{more}; --skip-corrupt (skip_corrupt=True "
                        "in Python) leaves unreadable files out")  # fmt: skip
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) in {_shown(folder)}, e.g. {_shown(skipped[0])}",
                      stacklevel=2)  # fmt: skip
    return ImageSet(entry["images"], entry["labels"], list(entry["classes"]), str(folder), len(skipped))


def _shown(path: str | Path) -> str:
    """A path for a one-line message: as it is, or quoted with escapes when it holds a line break
    or another unprintable character."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _is_image(entry: os.DirEntry[str]) -> bool:
    return _is_file(entry) and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a symlink loop, or a link into a folder we may not read: not an image
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _visible(folder: str) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted((entry for entry in entries if not entry.name.startswith(".")), key=lambda e: e.name)


def _row(entry: os.DirEntry[str], root: Path) -> tuple[str, int, int]:
    """(path relative to root, size, mtime_ns): one line of the content listing."""
    stat = entry.stat()
    return os.path.relpath(entry.path, root), stat.st_size, stat.st_mtime_ns


def _scan(folder: Path) -> tuple[list[tuple[str, int, int]], list[int] | None, list[str]]:
    """Content listing of the images in a fixed order, their labels (or None) and the class names."""
    entries = _visible(str(folder))
    images = [_row(entry, folder) for entry in entries if _is_image(entry)]
    subfolders = [entry for entry in entries if _is_dir(entry)]
    if images and subfolders:
        raise UserError(
            f"{folder} mixes images and subfolders; use one subfolder per class or a flat folder of images"
        )
    if images:
        return images, None, []
    listing: list[tuple[str, int, int]] = []
    labels: list[int] = []
    classes: list[str] = []
    seen = {_identity(str(folder))}
    for subfolder in subfolders:
        found = _images_below(subfolder.path, folder, seen)
        if found:
            labels += [len(classes)] * len(found)
            classes.append(subfolder.name)
            listing += found
    if not listing:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    return listing, labels, classes


def _images_below(folder: str, root: Path, seen: set[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """The images under `folder`, each folder read once: a symlink back to a folder already
    read (a loop) is not followed again."""
    identity = _identity(folder)
    if identity in seen:
        return []
    seen.add(identity)
    found: list[tuple[str, int, int]] = []
    for entry in _visible(folder):
        if _is_dir(entry):
            found += _images_below(entry.path, root, seen)
        elif _is_image(entry):
            found.append(_row(entry, root))
    return found


def _identity(folder: str) -> tuple[int, int]:
    stat = os.stat(folder)
    return stat.st_dev, stat.st_ino


def _decode_folder(
    folder: Path, files: list[str], labels: list[int] | None, classes: list[str], resolution: int, workers: int
) -> dict[str, Any]:
    """Decode every file; the cache entry (images, labels, classes, skipped file names)."""
    paths = [str(folder / rel) for rel in files]
    if workers > 1 and len(paths) >= _PARALLEL_FROM:
        chunk = -(-len(paths) // (4 * workers))
        jobs = [(paths[i : i + chunk], resolution) for i in range(0, len(paths), chunk)]
        method = "fork" if sys.platform == "linux" else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            parts = pool.map(_decode_many, jobs)
    else:
        parts = [_decode_many((paths, resolution))]
    pixels = np.concatenate([part[0] for part in parts])  # (N,H,W,3)
    failed = np.concatenate([part[1] for part in parts])  # (N,) bool
    keep = torch.from_numpy(~failed)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2)[keep].contiguous()  # (N,H,W,3) -> (N,3,H,W)
    label_tensor = None if labels is None else torch.tensor(labels, dtype=torch.int64)[keep]
    skipped = [rel for rel, bad in zip(files, failed.tolist()) if bad]
    return {"images": images, "labels": label_tensor, "classes": classes, "skipped": skipped}


def _decode_many(job: tuple[list[str], int]) -> tuple[np.ndarray, np.ndarray]:
    """(n,H,W,3) uint8 pixels and (n,) bool failure flags (failed rows are zero)."""
    paths, resolution = job
    pixels = np.zeros((len(paths), resolution, resolution, 3), dtype=np.uint8)
    failed = np.zeros(len(paths), dtype=bool)
    for row, path in enumerate(paths):
        try:
            pixels[row] = _decode(path, resolution)
        except Exception:  # noqa: BLE001 - any decoder failure marks the file unreadable
            failed[row] = True
    return pixels, failed


def _decode(path: str, resolution: int) -> np.ndarray:
    """One image as (resolution, resolution, 3) uint8 RGB."""
    with Image.open(path) as image:
        image.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale when much larger
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        else:
            rgb = image.convert("RGB")
    if rgb.size != (resolution, resolution):
        rgb = ImageOps.fit(rgb, (resolution, resolution), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


# ------------------------------------------------------------------------ entry point


def load_dataset(
    spec: str,
    split: str = "train",
    root: str | Path | None = None,
    resolution: int = 32,
    download: bool = False,
    skip_corrupt: bool = False,
) -> ImageSet:
    """Load a named dataset or an image folder into memory.

    Args:
        spec: "cifar10", "cifar100", or the path of an image folder. A folder with
            `train/` and `test/` subfolders is split by them; `split` picks one.
        split: "train" or "test".
        root: for CIFAR, the folder holding the official folders (default `ssnas.paths.data_dir()`).
        resolution: image side in pixels (CIFAR is resized from 32 when different).
        download: CIFAR only: fetch the official archive when missing.
        skip_corrupt: image folders only: leave unreadable files out with a warning.

    Returns:
        ImageSet with images (N,3,resolution,resolution) uint8.
    """
    name = spec.lower().replace("-", "").replace("_", "")
    if name in CIFAR:
        dataset = load_cifar(name, split, root, download)
        if resolution != dataset.images.shape[-1]:
            dataset.images = resize_images(dataset.images, resolution)
        return dataset
    folder = expand_user(spec)
    if not folder.exists():
        raise UserError(f"unknown dataset {spec!r}: not one of {', '.join(CIFAR)} and not an existing folder")
    _check_split(split)
    if (folder / split).is_dir():
        folder = folder / split
    elif any((folder / name).is_dir() for name in SPLITS):
        raise UserError(f"{folder} has no {split}/ subfolder")
    elif split != "train":
        raise UserError(f"{folder} is not split into train/ and test/ subfolders; only split='train' reads it")
    return load_image_folder(folder, resolution, skip_corrupt)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from: {', '.join(SPLITS)}")


def resize_images(images: torch.Tensor, resolution: int, chunk: int = 4096) -> torch.Tensor:
    """Antialiased bilinear resize of (N,C,H,W) uint8 to (N,C,resolution,resolution) uint8."""
    parts = [
        F.interpolate(part.float(), size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for part in images.split(chunk)
    ]
    return torch.cat(parts)


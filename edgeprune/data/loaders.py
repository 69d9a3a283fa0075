"""Read datasets from an ImageFolder-layout directory, an ``.npz`` file, or the built-in demo digits."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeprune.data.class_folders import LabelNaming, folder_labels
from edgeprune.data.dataset import ImageDataset
from edgeprune.data.image_open import open_image
from edgeprune.data.npz_headers import check_npz_sizes
from edgeprune.errors import DataError
from edgeprune.progress import progress_bar

log = logging.getLogger(__name__)

#: torchvision's reference evaluation transform: resize the shorter side to size / 0.875, centre-crop to size
CROP_FRACTION = 0.875
#: inputs at least this large (ImageNet-style models) get resize-then-centre-crop; smaller ones (CIFAR, digits)
#: are resized whole, since their images usually come at the model's size already
CENTRE_CROP_MIN_SIDE = 64

#: the arrays an ``.npz`` dataset may hold
NPZ_ARRAYS = ("x", "y", "label_names")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def load_npz(path: Path) -> ImageDataset:
    """An ``.npz`` with ``x`` (N, H, W, C) or (N, H, W) uint8 and optional ``y`` (N,) integer labels.

    The arrays' headers are read first: an archive declaring more than the memory available is refused before
    anything is allocated (:mod:`edgeprune.data.npz_headers`).
    """
    check_npz_sizes(path, NPZ_ARRAYS)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files if k in NPZ_ARRAYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {path} as an .npz archive: {str(exc).splitlines()[0]}") from None
    if "x" not in arrays:
        raise DataError(f"{path} has no array 'x' (expected x: (N, H, W, C) uint8 and y: (N,) labels)")
    x = arrays["x"]
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8:
        raise DataError(f"{path}: 'x' must be uint8 pixels, got {x.dtype}")
    y = arrays.get("y")
    if y is not None:
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: 'y' must hold integer labels, got {y.dtype}")
        y = y.astype(np.int64).reshape(-1)
    names: tuple[str, ...] = ()
    if "label_names" in arrays:
        names = tuple(str(n) for n in arrays["label_names"].tolist())
    labels_from = f"the 'y' array of {path.name}" if y is not None else ""
    return ImageDataset(np.ascontiguousarray(x), y, names, str(path), labels_from)


def fit_image(img: object, size_hw: tuple[int, int]) -> object:
    """A PIL image brought to ``size_hw`` the way the model's training pipeline most likely did.

    For inputs of at least :data:`CENTRE_CROP_MIN_SIDE` pixels, torchvision's reference evaluation transform:
    the shorter side resized to ``size / CROP_FRACTION`` (256 for 224), then the centre ``size_hw`` cropped, so
    the aspect ratio is kept. Smaller inputs are resized whole (bilinear).
    """
    from PIL import Image

    h, w = size_hw
    if min(h, w) < CENTRE_CROP_MIN_SIDE:
        return img.resize((w, h), Image.Resampling.BILINEAR)  # type: ignore[attr-defined]
    src_w, src_h = img.size  # type: ignore[attr-defined]
    scale = max(h, w) / CROP_FRACTION / min(src_w, src_h)
    new_w, new_h = max(w, round(src_w * scale)), max(h, round(src_h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)  # type: ignore[attr-defined]
    left, top = (new_w - w) // 2, (new_h - h) // 2
    return img.crop((left, top, left + w, top + h))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class FolderListing:
    """An image folder's files with their class index (-1 when unlabelled), without opening an image.

    ``class_names[i]`` names class ``i`` when the folders were numbered in sorted order (empty when the folder
    names gave the model's own indices, or when unlabelled); ``labels_from`` says how the labels were made.
    """

    entries: list[tuple[Path, int]]
    class_names: tuple[str, ...]
    labelled: bool
    labels_from: str = ""


def has_class_folders(path: Path) -> bool:
    """Whether ``path`` is a directory with class subfolders (hidden ones do not count)."""
    return path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


def list_image_folder(root: Path, naming: LabelNaming | None = None) -> FolderListing:
    """The image files under ``root`` (``root/<class>/<image>``) with their class index, no image opened.

    How a class folder's name becomes its index (ImageNet WordNet ids, integers, a class map, else sorted order)
    is :func:`~edgeprune.data.class_folders.folder_labels`'s, given the model's class count in ``naming``; the
    rule that applied is logged once. A folder of images with no class subfolders is unlabelled.
    """
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_dirs:
        labels = folder_labels([d.name for d in class_dirs], naming or LabelNaming(), str(root))
        entries = [(f, c) for d, c in zip(class_dirs, labels.indices, strict=True)
                   for f in sorted(d.rglob("*")) if f.is_file()]
    else:
        entries = [(f, -1) for f in sorted(root.iterdir()) if f.is_file()]
    entries = [(f, c) for f, c in entries if f.suffix.lower() in IMAGE_SUFFIXES]
    if not entries:
        raise DataError(f"{root} contains no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    if not class_dirs:
        log.info("labels: none: %s has no class subfolders, so its %d images are unlabelled (accuracy is measured "
                 "as agreement with the original model)", root, len(entries))
        return FolderListing(entries, (), False)
    log.info("labels: %s: %s", root, labels.description)
    return FolderListing(entries, labels.class_names, True, labels.description)


def read_image(file: Path, size_hw: tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 (H, W, C), brought to ``size_hw`` by :func:`fit_image`."""
    mode = "RGB" if channels == 3 else "L"
    with open_image(file) as img:
        arr = np.asarray(fit_image(img.convert(mode), size_hw), dtype=np.uint8)
    return arr.reshape(size_hw[0], size_hw[1], channels)


def load_image_folder(root: Path, size_hw: tuple[int, int], channels: int,
                      naming: LabelNaming | None = None) -> ImageDataset:
    """``root/<class>/<image>`` files read into memory, brought to ``size_hw`` (:func:`fit_image`) and
    ``channels`` on read (see :func:`list_image_folder` for the layout and how folder names become labels)."""
    listing = list_image_folder(root, naming)
    entries = listing.entries
    pixels = np.empty((len(entries), size_hw[0], size_hw[1], channels), dtype=np.uint8)
    with progress_bar(f"reading {root}", len(entries), "images") as advance:
        for i, (file, _) in enumerate(entries):
            pixels[i] = read_image(file, size_hw, channels)
            advance(1)
    labels = np.array([c for _, c in entries], dtype=np.int64) if listing.labelled else None
    log.info("read %d images from %s", len(entries), root)
    return ImageDataset(pixels, labels, listing.class_names, str(root), listing.labels_from)


def load_dataset(spec: str | Path, size_hw: tuple[int, int], channels: int,
                 naming: LabelNaming | None = None) -> ImageDataset:
    """Load a dataset from a directory (ImageFolder layout; ``naming``: the model's class count and a class map,
    for how folder names become labels) or an ``.npz`` file, into memory."""
    path = Path(spec)
    if not path.exists():
        raise DataError(f"data not found: {path}")
    if path.is_dir():
        return load_image_folder(path, size_hw, channels, naming)
    if path.suffix == ".npz":
        return load_npz(path)
    raise DataError(f"cannot read data from {path}: expected a directory of class folders or an .npz file")

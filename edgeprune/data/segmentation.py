"""Segmentation data for ``--data``: images and, optionally, one class mask per image, resized to the model's input.

Layout::

    DIR/images/<stem>.png|.jpg ...   the images (RGB, or anything Pillow reads and converts)
    DIR/masks/<stem>.png             one per image: the class id of each pixel (a grayscale or palette PNG, as
                                     PASCAL VOC's SegmentationClass), 255 = not scored (borders, "void")

Without ``masks/`` (or given a folder holding only images) the set is unlabelled: accuracy is then the pixel
agreement with the original model. Images are resized whole to the model's input (bilinear), masks to the same
size by nearest neighbour, so each pixel keeps a class id that exists in the mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeprune.data.image_open import open_image
from edgeprune.data.loaders import IMAGE_SUFFIXES
from edgeprune.errors import DataError

log = logging.getLogger(__name__)

#: the mask value of pixels that are not scored (same as :data:`edgeprune.tasks.segmentation.IGNORE_INDEX`)
IGNORE_MASK_VALUE = 255
MASK_SUFFIX = ".png"


@dataclass(frozen=True, eq=False)
class SegmentationDataset:
    """Images ``uint8`` (N, H, W, 3) and masks ``uint8`` (N, H, W) of class ids (255: not scored), or None when
    unlabelled; all at the model's input size."""

    images: np.ndarray
    masks: np.ndarray | None
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "segmentation dataset"
        x = self.images
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise DataError(f"{where}: images must be uint8 with shape (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
        if len(x) == 0:
            raise DataError(f"{where}: the dataset is empty")
        if self.masks is not None and (self.masks.dtype != np.uint8 or self.masks.shape != x.shape[:3]):
            raise DataError(f"{where}: masks must be uint8 with shape {tuple(x.shape[:3])}, got {self.masks.dtype} "
                            f"{tuple(self.masks.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labelled(self) -> bool:
        """Whether the set carries masks."""
        return self.masks is not None

    @property
    def largest_class_id(self) -> int | None:
        """The largest class id in the masks, ignored pixels left out (None when unlabelled or all ignored)."""
        if self.masks is None:
            return None
        ids = np.unique(self.masks)
        ids = ids[ids != IGNORE_MASK_VALUE]
        return int(ids.max()) if len(ids) else None

    def subset(self, indices: np.ndarray | list[int], source_suffix: str = "") -> SegmentationDataset:
        """The images (and masks) at ``indices``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        masks = None if self.masks is None else self.masks[idx]
        return SegmentationDataset(self.images[idx], masks, self.source + source_suffix)


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _open(path: Path) -> object:
    with open_image(path) as img:
        img.load()
        return img.copy()


def read_mask(path: Path) -> np.ndarray:
    """A mask file as (H, W) uint8 class ids: a grayscale or palette PNG (its palette indices are the ids)."""
    img = _open(path)
    mode = img.mode  # type: ignore[attr-defined]
    if mode not in ("L", "P", "I", "I;16", "1"):
        raise DataError(f"mask {path} is a {mode} image; a mask holds one class id per pixel (a grayscale or "
                        "palette PNG, 255 = not scored)")
    ids = np.asarray(img)
    if ids.size and (int(ids.max()) > IGNORE_MASK_VALUE or int(ids.min()) < 0):
        raise DataError(f"mask {path} has class id {int(ids.max())}; ids are 0..254, and 255 marks pixels not scored")
    return ids.astype(np.uint8)


def load_segmentation_dataset(path: str | Path, size_hw: tuple[int, int]) -> SegmentationDataset:
    """Read ``path`` (``images/`` and optional ``masks/``, or a folder of images; see the module's docstring),
    resized to ``size_hw``.

    >>> val = load_segmentation_dataset("shapes/val", (128, 128))        # doctest: +SKIP
    >>> val.masks.shape                                                   # doctest: +SKIP
    (100, 128, 128)
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"segmentation data not found: {root} (expected a folder with images/ and masks/)")
    image_dir = root / "images" if (root / "images").is_dir() else root
    mask_dir = root / "masks" if (root / "masks").is_dir() else None
    files = _image_files(image_dir)
    if not files:
        raise DataError(f"{image_dir} contains no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    h, w = size_hw
    images = np.empty((len(files), h, w, 3), dtype=np.uint8)
    masks = None if mask_dir is None else np.empty((len(files), h, w), dtype=np.uint8)
    for i, file in enumerate(files):
        img = _open(file).convert("RGB")  # type: ignore[attr-defined]
        images[i] = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))
        if masks is None or mask_dir is None:
            continue
        mask_file = mask_dir / f"{file.stem}{MASK_SUFFIX}"
        if not mask_file.is_file():
            raise DataError(f"image {file.name} has no mask: expected {mask_file}")
        ids = read_mask(mask_file)
        if ids.shape != (img.height, img.width):
            raise DataError(f"mask {mask_file} is {ids.shape[1]}x{ids.shape[0]} pixels but its image {file.name} is "
                            f"{img.width}x{img.height}")
        masks[i] = np.asarray(Image.fromarray(ids).resize((w, h), Image.Resampling.NEAREST))
    log.info("read %d images%s from %s", len(files), " with masks" if masks is not None else " (unlabelled)", root)
    return SegmentationDataset(images, masks, str(root))

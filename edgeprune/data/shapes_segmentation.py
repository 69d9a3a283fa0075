"""A seeded, generated segmentation set: circles, squares and triangles on textured backgrounds.

Each image (``SHAPES_SIZE_PX`` square) shows one to three shapes of random size, colour, position and rotation,
drawn over smooth colour noise with stripes; its mask holds each pixel's class (0 background, 1 circle, 2 square,
3 triangle) and 255 on a one-pixel band along every shape's outline (not scored, as PASCAL VOC marks its object
borders). Colours are drawn independently of the class, so only the shape tells the classes apart.

Written in :mod:`edgeprune.data.segmentation`'s layout (``images/*.png``, ``masks/*.png``), so ``--data`` reads it
as it reads a user's set; :func:`shapes_segmentation_splits` keeps one copy in edgeprune's cache.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from edgeprune.cache import cache_dir

log = logging.getLogger(__name__)

SHAPES_CLASSES = ("background", "circle", "square", "triangle")
SHAPES_SIZE_PX = 128
SHAPES_VERSION = "v1"
SHAPES_TRAIN_IMAGES = 400
SHAPES_VAL_IMAGES = 100
#: the seed of the training split; the validation split uses the next one
SHAPES_SEED = 0
_BORDER = 255


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise (a bilinearly upsampled coarse grid), stripes and pixel noise: (size, size, 3) float."""
    from PIL import Image

    cells = int(rng.integers(2, 7))
    coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    return smooth + rng.uniform(5, 30) * stripes + rng.normal(0, 6, (size, size, 3))


def _polygon(kind: int, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    corners = 4 if kind == 2 else 3
    steps = angle + np.arange(corners) * 2 * np.pi / corners
    return [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in steps]


def draw_shapes_example(rng: np.random.Generator, size: int = SHAPES_SIZE_PX) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (size, size, 3), mask uint8 (size, size)) pair drawn with ``rng``."""
    from PIL import Image, ImageDraw

    image = _background(rng, size)
    ids = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(1, len(SHAPES_CLASSES)))
        radius = rng.uniform(0.12, 0.3) * size
        cx, cy = rng.uniform(radius, size - radius, 2)
        shape = Image.new("L", (size, size), 0)
        pen = ImageDraw.Draw(shape)
        if kind == 1:
            pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
        else:
            pen.polygon(_polygon(kind, cx, cy, radius, rng.uniform(0, 2 * np.pi)), fill=255)
        inside = np.asarray(shape) > 0
        colour = rng.uniform(0, 255, 3)
        texture = rng.normal(0, rng.uniform(2, 20), (size, size, 1))
        image[inside] = (colour + texture[inside])
        ids[inside] = kind
    edges = np.zeros_like(ids, dtype=bool)  # one pixel along every boundary between two classes
    edges[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edges[1:, :] |= ids[1:, :] != ids[:-1, :]
    ids[edges] = _BORDER
    return np.clip(image, 0, 255).astype(np.uint8), ids


def write_shapes_segmentation(root: Path, count: int, seed: int, size: int = SHAPES_SIZE_PX) -> Path:
    """Write ``count`` seeded examples into ``root/images`` and ``root/masks`` (PNG); returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, mask = draw_shapes_example(rng, size)
        Image.fromarray(image).save(root / "images" / f"{i:05d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:05d}.png")
    return root


def shapes_segmentation_splits() -> tuple[Path, Path]:
    """(train, val) folders of the generated set in edgeprune's cache, written on first use (a few seconds)."""
    base = cache_dir() / f"segmentation-shapes-{SHAPES_VERSION}"
    splits = []
    for name, count, seed in (("train", SHAPES_TRAIN_IMAGES, SHAPES_SEED), ("val", SHAPES_VAL_IMAGES, SHAPES_SEED + 1)):
        folder = base / name
        if not (folder / "masks").is_dir():
            log.info("writing the generated shapes segmentation set (%s, %d images) to %s", name, count, folder)
            staging = base / f".{name}-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            write_shapes_segmentation(staging, count, seed)
            try:
                staging.rename(folder)
            except OSError:  # another process wrote it first
                shutil.rmtree(staging, ignore_errors=True)
        splits.append(folder)
    return splits[0], splits[1]

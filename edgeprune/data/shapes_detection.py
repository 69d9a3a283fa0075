"""A small synthetic detection set: filled circles, squares, triangles and crosses of random size, colour,
rotation and position (1 to 4 per image) on noisy, textured backgrounds with unlabelled clutter (lines, hollow
rings); seeded, so the same seed writes the same files.

It is written in the YOLO layout, so ``--data`` and Ultralytics read it as they read any dataset::

    root/data.yaml               train: train/images, val: val/images, names: [circle, square, triangle, cross]
    root/train/images/00000.png  root/train/labels/00000.txt (class cx cy w h, normalized)   root/train/classes.txt
    root/val/...

The folder is built under a temporary name beside ``root`` and renamed into place, so a reader never sees half
a dataset.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SHAPES_CLASSES = ("circle", "square", "triangle", "cross")
#: shapes are drawn at this multiple of the output size, then downsampled (antialiased edges)
SUPERSAMPLE = 2


@dataclass(frozen=True)
class ShapesSpec:
    """What the generator draws: image side, split sizes, objects per image, object sides, seed."""

    size_px: int = 160
    train_images: int = 600
    val_images: int = 150
    min_objects: int = 1
    max_objects: int = 4
    min_side_px: int = 12
    max_side_px: int = 52
    max_clutter: int = 3
    min_contrast: float = 120.0
    max_noise_sigma: float = 16.0
    seed: int = 0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float (size, size, 3) in 0..255: two colours blended by smooth noise, sometimes stripes, pixel noise."""
    from PIL import Image

    grid = Image.fromarray((rng.random((5, 5)) * 255).astype(np.uint8))
    coarse = np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    blend = np.clip(coarse + rng.normal(0, 0.05, (size, size)), 0, 1)[..., None]
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = a * (1 - blend) + b * blend
    if rng.random() < 0.3:  # stripes
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 24)
        yy, xx = np.mgrid[0:size, 0:size]
        stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
        img = img + stripes[..., None] * rng.uniform(10, 30)
    return img


def _polygon(kind: str, cx: float, cy: float, side: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a square, triangle or cross of bounding side ``side`` centred at (cx, cy), rotated by angle."""
    r = side / 2
    if kind == "square":
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
    elif kind == "triangle":
        pts = [(r * math.cos(t), r * math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    else:  # cross: arms a third of the side wide
        t = r / 3
        pts = [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r), (-t, t), (-r, t), (-r, -t),
               (-t, -t)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _clutter(draw: object, rng: np.random.Generator, spec: ShapesSpec) -> None:
    """Unlabelled distractors: thin lines and hollow rings (an outline is not a shape of any class)."""
    big = spec.size_px * SUPERSAMPLE
    for _ in range(int(rng.integers(0, spec.max_clutter + 1))):
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        width = int(rng.integers(1, 3)) * SUPERSAMPLE
        if rng.random() < 0.5:
            draw.line([tuple(rng.uniform(0, big, 2)), tuple(rng.uniform(0, big, 2))], fill=colour,  # type: ignore[attr-defined]
                      width=width)
        else:
            x, y = rng.uniform(0, big, 2)
            r = rng.uniform(spec.min_side_px, spec.max_side_px) * SUPERSAMPLE / 2
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=width)  # type: ignore[attr-defined]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def render_shapes_image(rng: np.random.Generator, spec: ShapesSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: uint8 (S, S, 3), its boxes float32 (K, 4) xyxy in pixels and classes int64 (K,)."""
    from PIL import Image, ImageDraw

    size, big = spec.size_px, spec.size_px * SUPERSAMPLE
    background = _background(rng, size)
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).resize((big, big), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    _clutter(draw, rng, spec)
    boxes: list[np.ndarray] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        for _attempt in range(20):
            cls = int(rng.integers(len(SHAPES_CLASSES)))
            side = rng.uniform(spec.min_side_px, spec.max_side_px)
            cx, cy = rng.uniform(side / 2 + 1, size - side / 2 - 1, 2)
            angle = rng.uniform(0, 2 * math.pi) if cls != 0 else 0.0
            if SHAPES_CLASSES[cls] == "circle":
                pts = [(cx - side / 2, cy - side / 2), (cx + side / 2, cy + side / 2)]
            else:
                pts = _polygon(SHAPES_CLASSES[cls], cx, cy, side, angle)
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            box = np.array([min(xs), min(ys), max(xs), max(ys)], dtype=np.float32).clip(0, size)
            if all(_iou(box, other) < 0.2 for other in boxes):
                break
        else:
            continue
        local = background[int(cy), int(cx)]
        colour = rng.uniform(0, 255, 3)
        while np.abs(colour - local).sum() < spec.min_contrast:  # keep the shape visible against what lies beneath it
            colour = rng.uniform(0, 255, 3)
        fill = tuple(int(v) for v in colour)
        scaled = [(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in pts]
        if SHAPES_CLASSES[cls] == "circle":
            draw.ellipse(scaled, fill=fill)
        else:
            draw.polygon(scaled, fill=fill)
        boxes.append(box)
        classes.append(cls)
    small = np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float64)
    noisy = small + rng.normal(0, rng.uniform(2, spec.max_noise_sigma), small.shape)
    pixels = np.clip(noisy, 0, 255).astype(np.uint8)
    return (pixels, np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(classes, dtype=np.int64))


def _label_lines(boxes: np.ndarray, classes: np.ndarray, size: int) -> str:
    lines = []
    for (x1, y1, x2, y2), cls in zip(boxes, classes):
        cx, cy, w, h = (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _write_split(folder: Path, rng: np.random.Generator, count: int, spec: ShapesSpec) -> None:
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "classes.txt").write_text("".join(f"{n}\n" for n in SHAPES_CLASSES), encoding="utf-8")
    for i in range(count):
        pixels, boxes, classes = render_shapes_image(rng, spec)
        Image.fromarray(pixels).save(folder / "images" / f"{i:05d}.png")
        (folder / "labels" / f"{i:05d}.txt").write_text(_label_lines(boxes, classes, spec.size_px), encoding="utf-8")


def data_yaml_text() -> str:
    """The ``data.yaml`` of a shapes dataset (paths relative to its folder)."""
    names = ", ".join(SHAPES_CLASSES)
    return f"# edgeprune's synthetic shapes detection set\ntrain: train/images\nval: val/images\nnames: [{names}]\n"


def write_shapes_dataset(root: Path, spec: ShapesSpec = ShapesSpec()) -> Path:
    """Write the dataset of ``spec`` to ``root`` (atomically) and return its ``data.yaml``.

    An existing ``root`` is left as it is (its ``data.yaml`` returned).
    """
    root = Path(root)
    if (root / "data.yaml").is_file():
        return root / "data.yaml"
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        train_seed, val_seed = np.random.SeedSequence(spec.seed).spawn(2)
        _write_split(tmp / "train", np.random.default_rng(train_seed), spec.train_images, spec)
        _write_split(tmp / "val", np.random.default_rng(val_seed), spec.val_images, spec)
        (tmp / "data.yaml").write_text(data_yaml_text(), encoding="utf-8")
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished first (or root is a non-empty folder): keep theirs
            if not (root / "data.yaml").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote the shapes detection set (%d train, %d val images of %d px) to %s", spec.train_images,
             spec.val_images, spec.size_px, root)
    return root / "data.yaml"

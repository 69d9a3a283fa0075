"""YOLO label files: one line per object, ``class cx cy w h`` normalized to 0..1 (or ``class x1 y1 x2 y2 ...``, a
polygon, read as its bounding box). Where Ultralytics looks for an image's label file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeprune.errors import DataError

#: slack on the 0..1 range of normalized coordinates (rounding in label files written by other tools)
NORMALIZED_SLACK = 1e-3


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/`` and the suffix ``.txt``."""
    text = str(image)
    marker, replacement = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = head + replacement + tail
    return Path(text).with_suffix(".txt")


def _parse_line(tokens: list[str], where: str) -> tuple[int, np.ndarray]:
    """One label line as (class id, normalized cx, cy, w, h)."""
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise DataError(f"{where}: '{bad}' is not a number (expected 'class cx cy w h')") from None
    cls = values[0]
    if cls != int(cls) or cls < 0:
        raise DataError(f"{where}: class id '{tokens[0]}' must be a non-negative integer")
    coords = np.asarray(values[1:], dtype=np.float64)
    if len(coords) == 4:
        cx, cy, w, h = coords
    elif len(coords) >= 6 and len(coords) % 2 == 0:  # a segment polygon: its bounding box
        xs, ys = coords[0::2], coords[1::2]
        cx, cy, w, h = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, xs.max() - xs.min(), ys.max() - ys.min()
    else:
        raise DataError(f"{where}: expected 'class cx cy w h' (5 values), got {len(tokens)} values")
    if coords.min() < -NORMALIZED_SLACK or coords.max() > 1 + NORMALIZED_SLACK:
        raise DataError(f"{where}: coordinates must be normalized to 0..1, got {' '.join(tokens[1:])}")
    return int(cls), np.array([cx, cy, w, h], dtype=np.float64)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_label_file(path: Path, num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(classes int64 (K,), boxes float64 (K, 4) normalized cx, cy, w, h)``; a missing file holds no objects.

    Raises :class:`DataError` naming the file and line of a malformed line or a class id outside the names.
    """
    if not path.is_file():
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.float64)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read label file {path}: {str(exc).splitlines()[0]}") from None
    classes, boxes = [], []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{number}"
        cls, box = _parse_line(tokens, where)
        if num_classes is not None and cls >= num_classes:
            raise DataError(f"{where}: class id {cls} is outside the {num_classes} class names (0..{num_classes - 1})")
        classes.append(cls)
        boxes.append(box)
    if not classes:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.float64)
    return np.array(classes, dtype=np.int64), np.clip(np.stack(boxes), 0.0, 1.0)


def normalized_cxcywh_to_xyxy_px(boxes: np.ndarray, source_hw: tuple[int, int]) -> np.ndarray:
    """Normalized (K, 4) cx, cy, w, h to xyxy in the pixels of an image of ``source_hw``."""
    h, w = source_hw
    cx, cy, bw, bh = boxes[:, 0] * w, boxes[:, 1] * h, boxes[:, 2] * w, boxes[:, 3] * h
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)

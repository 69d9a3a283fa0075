"""COCO detection JSON (``instances*.json``: ``images``, ``annotations`` with ``bbox`` [x, y, w, h] in pixels,
``categories``) and its images, read into a letterboxed :class:`DetectionDataset`.

Categories become classes 0..C-1 in the order of their ids (COCO's ids 1..90 with gaps become 0..79); crowd
annotations are left out, as COCO's evaluation ignores them. An image file is looked for beside the JSON, in
its parent folder, in ``images/`` there, and in the folder named after the JSON (``instances_val2017.json`` →
``val2017/``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from edgeprune.data.detection_dataset import DetectionDataset
from edgeprune.data.letterbox import letterbox_image
from edgeprune.data.rgb_image import read_rgb_image
from edgeprune.errors import DataError

log = logging.getLogger(__name__)


def _image_dirs(json_path: Path) -> list[Path]:
    here, parent = json_path.parent, json_path.parent.parent
    split = json_path.stem.split("_", 1)[1] if "_" in json_path.stem else json_path.stem
    return [here, parent, parent / "images", parent / split, parent / "images" / split, here / "images"]


def _find_image(file_name: str, dirs: list[Path], json_path: Path) -> Path:
    for folder in dirs:
        if (folder / file_name).is_file():
            return folder / file_name
    raise DataError(f"{json_path}: image '{file_name}' not found (looked in {', '.join(str(d) for d in dirs)})")


def _read(json_path: Path) -> dict:
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {json_path}: {str(exc).splitlines()[0]}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{json_path} is not valid JSON: {exc}") from None
    if not isinstance(content, dict) or not isinstance(content.get("images"), list):
        raise DataError(f"{json_path}: expected COCO JSON with 'images', 'annotations' and 'categories'")
    return content


def load_coco_json(json_path: Path, size_hw: tuple[int, int]) -> DetectionDataset:
    """The images of a COCO ``instances*.json`` with their boxes, letterboxed to ``size_hw``."""
    content = _read(json_path)
    try:
        categories = sorted(content.get("categories", []), key=lambda c: int(c["id"]))
        class_of = {int(c["id"]): i for i, c in enumerate(categories)}
        names = tuple(str(c.get("name", c["id"])) for c in categories)
        images = [(int(im["id"]), str(im["file_name"])) for im in content["images"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{json_path}: malformed 'categories' or 'images' entry ({exc!r})") from None
    if not images:
        raise DataError(f"{json_path} lists no images")
    per_image: dict[int, list[tuple[int, list[float]]]] = {image_id: [] for image_id, _ in images}
    for k, ann in enumerate(content.get("annotations", [])):
        try:
            if ann.get("iscrowd", 0):
                continue
            category, bbox, image_id = int(ann["category_id"]), [float(v) for v in ann["bbox"]], int(ann["image_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{json_path}: annotation {k} is malformed ({exc!r})") from None
        if category not in class_of:
            raise DataError(f"{json_path}: annotation {k} has category_id {category}, not among 'categories'")
        if len(bbox) != 4 or image_id not in per_image:
            raise DataError(f"{json_path}: annotation {k} needs a 4-value bbox and a listed image_id")
        per_image[image_id].append((class_of[category], bbox))
    dirs = _image_dirs(json_path)
    pixels = np.empty((len(images), size_hw[0], size_hw[1], 3), dtype=np.uint8)
    boxes, classes = [], []
    for i, (image_id, file_name) in enumerate(images):
        pixels[i], geometry = letterbox_image(read_rgb_image(_find_image(file_name, dirs, json_path)), size_hw)
        objects = per_image[image_id]
        xywh = np.array([b for _, b in objects], dtype=np.float32).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes.append(geometry.boxes_to_input(xyxy))
        classes.append(np.array([c for c, _ in objects], dtype=np.int64))
    log.info("read %d images with %d objects from %s", len(images), sum(len(c) for c in classes), json_path)
    return DetectionDataset(pixels, boxes, classes, names, str(json_path))

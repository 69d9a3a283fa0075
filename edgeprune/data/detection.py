"""Detection data for ``--data``: the YOLO layout (``images/`` + ``labels/``, or a ``data.yaml``) or COCO JSON,
read into a :class:`DetectionDataset` letterboxed to the model's input size.

Accepted forms of ``path``:

* a ``data.yaml`` (or a folder holding one): its ``val:`` split (``split`` chooses another) and ``names:``;
* a folder with ``images/`` and ``labels/`` (one ``.txt`` per image, same stem; an image without one has no
  objects); class names from a ``classes.txt`` beside them when present;
* a folder of images without ``labels/``: unlabelled;
* a COCO ``instances*.json``, or a folder holding ``annotations/instances*.json`` (the one naming ``split`` when
  there are several), and its images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeprune.data.detection_dataset import DetectionDataset
from edgeprune.data.letterbox import letterbox_image
from edgeprune.data.loaders import IMAGE_SUFFIXES
from edgeprune.data.rgb_image import read_rgb_image
from edgeprune.data.yolo_labels import label_path_for, normalized_cxcywh_to_xyxy_px, read_label_file
from edgeprune.data.yolo_yaml import read_data_yaml
from edgeprune.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["DetectionDataset", "load_detection_dataset", "load_yolo_images"]

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


def _image_files(source: Path) -> list[Path]:
    """The images a split entry names: a folder (searched recursively) or a ``.txt`` list of files."""
    if source.is_dir():
        return sorted(f for f in source.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if source.is_file() and source.suffix == ".txt":
        lines = [ln.strip() for ln in source.read_text(encoding="utf-8").splitlines() if ln.strip()]
        files = [p if p.is_absolute() else (source.parent / p).resolve() for p in map(Path, lines)]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{source} lists {len(missing)} missing image(s), e.g. {missing[0]}")
        return files
    raise DataError(f"data not found: {source} (expected a folder of images or a .txt list of image files)")


def load_yolo_images(sources: Sequence[Path], size_hw: tuple[int, int], class_names: tuple[str, ...] = (),
                     description: str = "") -> DetectionDataset:
    """Images from ``sources`` (folders or ``.txt`` lists) with their YOLO labels, letterboxed to ``size_hw``.

    Labelled when any label file exists for these images or a ``labels/`` folder stands where Ultralytics looks
    for them; then an image without a label file has no objects.
    """
    files = [f for s in sources for f in _image_files(s)]
    where = description or ", ".join(str(s) for s in sources)
    if not files:
        raise DataError(f"{where} contains no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    label_files = [label_path_for(f) for f in files]
    labelled = any(p.is_file() for p in label_files) or any(
        p.parent != f.parent and p.parent.is_dir() for f, p in zip(files, label_files))
    num_classes = len(class_names) if class_names else None
    pixels = np.empty((len(files), size_hw[0], size_hw[1], 3), dtype=np.uint8)
    boxes: list[np.ndarray] = []
    classes: list[np.ndarray] = []
    for i, (file, label_file) in enumerate(zip(files, label_files)):
        pixels[i], geometry = letterbox_image(read_rgb_image(file), size_hw)
        if labelled:
            cls, norm = read_label_file(label_file, num_classes)
            boxes.append(geometry.boxes_to_input(normalized_cxcywh_to_xyxy_px(norm, geometry.source_hw)))
            classes.append(cls)
    n_objects = sum(len(c) for c in classes)
    log.info("read %d images%s from %s", len(files), f" with {n_objects} objects" if labelled else " (unlabelled)",
             where)
    return DetectionDataset(pixels, boxes if labelled else None, classes if labelled else None, class_names, where)


def _classes_txt(folder: Path) -> tuple[str, ...]:
    file = folder / "classes.txt"
    if not file.is_file():
        return ()
    return tuple(ln.strip() for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip())


def load_detection_dataset(path: str | Path, size_hw: tuple[int, int], split: str = "val") -> DetectionDataset:
    """Read detection data at ``path`` (see the module's docstring for the forms), letterboxed to ``size_hw``.

    >>> val = load_detection_dataset("shapes/data.yaml", (160, 160))        # doctest: +SKIP
    >>> val.boxes[0]  # (K, 4) float32 xyxy in input pixels                 # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data not found: {path}")
    if path.is_file():
        if path.suffix in (".yaml", ".yml"):
            config = read_data_yaml(path)
            return load_yolo_images(config.split(split), size_hw, config.class_names, f"{path} ({split})")
        if path.suffix == ".json":
            from edgeprune.data.coco_json import load_coco_json

            return load_coco_json(path, size_hw)
        raise DataError(f"cannot read detection data from {path}: expected a data.yaml, a COCO .json or a folder")
    for name in YAML_NAMES:
        if (path / name).is_file():
            return load_detection_dataset(path / name, size_hw, split)
    coco = sorted((path / "annotations").glob("instances*.json")) if (path / "annotations").is_dir() else []
    if coco:
        from edgeprune.data.coco_json import load_coco_json

        chosen = [f for f in coco if split in f.stem] if len(coco) > 1 else coco
        if len(chosen) != 1:
            raise DataError(f"{path / 'annotations'} holds {', '.join(f.name for f in coco)}: pass the one to use")
        return load_coco_json(chosen[0], size_hw)
    images = path / "images" if (path / "images").is_dir() else path
    return load_yolo_images([images], size_hw, _classes_txt(path), str(path))

"""edgeprune.data.shapes_detection: the seeded synthetic detection set, in the YOLO layout, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeprune.data.detection import load_detection_dataset
from edgeprune.data.shapes_detection import SHAPES_CLASSES, ShapesSpec, render_shapes_image, write_shapes_dataset

SMALL = ShapesSpec(size_px=64, train_images=6, val_images=4, min_side_px=10, max_side_px=24, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    a = write_shapes_dataset(tmp_path / "a", SMALL).parent
    b = write_shapes_dataset(tmp_path / "b", SMALL).parent
    c = write_shapes_dataset(tmp_path / "c", ShapesSpec(**{**SMALL.__dict__, "seed": 4})).parent
    assert _files(a) == _files(b)
    assert _files(a) != _files(c)
    assert len(list((a / "train" / "images").glob("*.png"))) == 6
    assert len(list((a / "val" / "labels").glob("*.txt"))) == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary folder is left"


def test_reads_back_through_every_entry_point(tmp_path: Path) -> None:
    yaml = write_shapes_dataset(tmp_path / "shapes", SMALL)
    val = load_detection_dataset(yaml, (64, 64))
    assert val.class_names == SHAPES_CLASSES and len(val) == 4
    by_folder = load_detection_dataset(yaml.parent / "val", (64, 64))  # classes.txt names the classes
    assert by_folder.class_names == SHAPES_CLASSES
    assert val.boxes is not None and by_folder.boxes is not None
    for ours, theirs in zip(val.boxes, by_folder.boxes):
        np.testing.assert_allclose(ours, theirs)
    train = load_detection_dataset(yaml.parent, (64, 64), split="train")
    assert len(train) == 6 and 6 <= train.num_objects <= 6 * SMALL.max_objects


def test_rendered_boxes_hold_their_shapes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        pixels, boxes, classes = render_shapes_image(rng, SMALL)
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        assert SMALL.min_objects <= len(boxes) <= SMALL.max_objects and len(classes) == len(boxes)
        assert (boxes >= 0).all() and (boxes <= 64).all()
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        assert (sides >= SMALL.min_side_px * 0.7).all() and (sides <= SMALL.max_side_px * 1.5).all()
        assert set(classes.tolist()) <= set(range(len(SHAPES_CLASSES)))


def test_an_existing_dataset_is_kept(tmp_path: Path) -> None:
    yaml = write_shapes_dataset(tmp_path / "s", SMALL)
    marker = yaml.parent / "train" / "images" / "00000.png"
    stamp = marker.stat().st_mtime_ns
    assert write_shapes_dataset(tmp_path / "s", ShapesSpec(**{**SMALL.__dict__, "seed": 9})) == yaml
    assert marker.stat().st_mtime_ns == stamp


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    impossible = ShapesSpec(**{**SMALL.__dict__, "min_objects": 3, "max_objects": 1})  # fails on the first image
    with pytest.raises(ValueError):
        write_shapes_dataset(tmp_path / "s", impossible)
    assert list(tmp_path.iterdir()) == []

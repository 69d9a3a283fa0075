"""edgeprune.data.segmentation: the images/ + masks/ layout, unlabelled folders, resizing (masks by nearest
neighbour), and one-line errors on bad input; the generated shapes set is seeded and in that layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeprune.data.segmentation import SegmentationDataset, load_segmentation_dataset
from edgeprune.data.shapes_segmentation import SHAPES_CLASSES, draw_shapes_example, write_shapes_segmentation
from edgeprune.errors import DataError, EdgepruneError


def _image(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _mask(path: Path, ids: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8))
    if mode == "P":
        img = img.convert("P")
        img.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    img.save(path)


def _halves(h: int, w: int, left: int, right: int) -> np.ndarray:
    ids = np.full((h, w), left, np.uint8)
    ids[:, w // 2:] = right
    return ids


@pytest.fixture()
def labelled(tmp_path: Path) -> Path:
    """Two 40x20 images: masks with classes 1 | 2 (grayscale) and 0 | 255 (a palette PNG, as PASCAL VOC's)."""
    root = tmp_path / "set"
    _image(root / "images" / "a.png", 40, 20)
    _mask(root / "masks" / "a.png", _halves(20, 40, 1, 2))
    _image(root / "images" / "b.jpg", 40, 20)
    _mask(root / "masks" / "b.png", _halves(20, 40, 0, 255), mode="P")
    return root


def test_the_layout_reads_images_and_masks_resized_to_the_input(labelled: Path) -> None:
    data = load_segmentation_dataset(labelled, (16, 24))
    assert isinstance(data, SegmentationDataset) and data.labelled and len(data) == 2
    assert data.images.shape == (2, 16, 24, 3) and data.images.dtype == np.uint8
    assert data.masks is not None and data.masks.shape == (2, 16, 24) and data.masks.dtype == np.uint8
    # nearest neighbour: only the ids of the files, with the halves where they were
    assert set(np.unique(data.masks[0])) == {1, 2} and set(np.unique(data.masks[1])) == {0, 255}
    assert (data.masks[0][:, :12] == 1).all() and (data.masks[0][:, 12:] == 2).all()
    assert data.largest_class_id == 2  # 255 is "not scored", not a class
    subset = data.subset([1])
    assert len(subset) == 1 and subset.largest_class_id == 0


def test_a_folder_without_masks_is_unlabelled(tmp_path: Path) -> None:
    _image(tmp_path / "plain" / "x.png", 30, 30)
    _image(tmp_path / "nested" / "images" / "y.png", 30, 30)
    for root in (tmp_path / "plain", tmp_path / "nested"):
        data = load_segmentation_dataset(root, (8, 8))
        assert data.masks is None and not data.labelled and data.largest_class_id is None
        assert data.images.shape == (1, 8, 8, 3)


@pytest.mark.parametrize("breakage, message", [
    ("missing folder", "segmentation data not found"),
    ("no images", "contains no images"),
    ("missing mask", "has no mask: expected"),
    ("mask size", "is 10x20 pixels but its image a.png is 40x20"),
    ("rgb mask", "is a RGB image; a mask holds one class id per pixel"),
    ("unreadable image", "cannot read image"),
])
def test_bad_input_is_one_line(labelled: Path, tmp_path: Path, breakage: str, message: str) -> None:
    root = labelled
    if breakage == "missing folder":
        root = tmp_path / "nowhere"
    elif breakage == "no images":
        root = tmp_path / "empty"
        (root / "images").mkdir(parents=True)
    elif breakage == "missing mask":
        (labelled / "masks" / "b.png").unlink()
    elif breakage == "mask size":
        _mask(labelled / "masks" / "a.png", _halves(20, 10, 1, 2))
    elif breakage == "rgb mask":
        Image.new("RGB", (40, 20)).save(labelled / "masks" / "a.png")
    elif breakage == "unreadable image":
        (labelled / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=message) as caught:
        load_segmentation_dataset(root, (16, 16))
    assert isinstance(caught.value, EdgepruneError) and "\n" not in str(caught.value)


def test_the_dataset_checks_its_arrays() -> None:
    images = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(DataError, match="masks must be uint8 with shape"):
        SegmentationDataset(images, np.zeros((2, 4, 5), np.uint8))
    with pytest.raises(DataError, match="the dataset is empty"):
        SegmentationDataset(images[:0], None)


def test_the_generated_shapes_set_is_seeded_and_in_the_layout(tmp_path: Path) -> None:
    first, second = (draw_shapes_example(np.random.default_rng(7), 64) for _ in range(2))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    root = write_shapes_segmentation(tmp_path / "shapes", 6, seed=3, size=64)
    data = load_segmentation_dataset(root, (64, 64))
    assert len(data) == 6 and data.masks is not None
    ids = set(np.unique(data.masks).tolist())
    assert ids <= set(range(len(SHAPES_CLASSES))) | {255}
    assert 0 in ids and 255 in ids and ids & {1, 2, 3}  # background, outlines and at least one shape
    assert (data.masks == 0).mean() > 0.3  # mostly background, as the recipe draws it


def test_fit_refuses_mask_ids_beyond_the_model_classes(labelled: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeprune", "fit", "--model", "torchvision:lraspp_mobilenet_v3_large",
         "--num-classes", "2", "--input-shape", "3,32,32", "--data", str(labelled), "--target", "cpu",
         "--budget", "50%", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert "has masks with class id 2 but model 'torchvision:lraspp_mobilenet_v3_large' segments 2 classes" in error

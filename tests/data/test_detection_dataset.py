"""edgeprune.data.detection: DetectionDataset, letterboxing, the YOLO layout, data.yaml and COCO JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeprune.data.detection import DetectionDataset, load_detection_dataset
from edgeprune.data.letterbox import PAD_VALUE, letterbox_geometry
from edgeprune.errors import DataError, EdgepruneError


def _image(path: Path, w: int, h: int, colour: tuple[int, int, int] = (200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), colour).save(path)
    return path


def _label(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ln}\n" for ln in lines))
    return path


@pytest.fixture()
def yolo_folder(tmp_path: Path) -> Path:
    """Three images: a 200x100 with two objects, a square without a label file, a 100x200 with an empty one."""
    root = tmp_path / "set"
    _image(root / "images" / "a.png", 200, 100)
    _label(root / "labels" / "a.txt", "0 0.5 0.5 0.5 0.5", "1 0.25 0.25 0.1 0.2")
    _image(root / "images" / "b.png", 64, 64)
    _image(root / "images" / "c.jpg", 100, 200)
    _label(root / "labels" / "c.txt")
    return root


# ---------------------------------------------------------------------------------------------- letterbox


def test_letterbox_geometry_matches_ultralytics() -> None:
    from_wide = letterbox_geometry((100, 200), (160, 160))
    assert from_wide.scale == pytest.approx(0.8) and from_wide.resized_hw == (80, 160)
    assert (from_wide.top_px, from_wide.left_px) == (40, 0)
    boxes = from_wide.boxes_to_input(np.array([[0, 0, 200, 100], [50, 25, 150, 75]], dtype=np.float32))
    assert boxes.tolist() == [[0, 40, 160, 120], [40, 60, 120, 100]]
    same = letterbox_geometry((160, 160), (160, 160))
    assert same.scale == 1 and (same.top_px, same.left_px) == (0, 0)


def test_letterbox_against_ultralytics_own() -> None:
    pytest.importorskip("ultralytics", reason="ultralytics (the [yolo] extra) is not installed")
    from edgeprune.models.ultralytics_env import configure_ultralytics_offline

    configure_ultralytics_offline()
    from ultralytics.data.augment import LetterBox

    from edgeprune.data.letterbox import letterbox_image

    rng = np.random.default_rng(0)
    for h, w in ((100, 200), (37, 91), (300, 120)):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ours, geometry = letterbox_image(Image.fromarray(pixels), (160, 160))
        theirs = LetterBox((160, 160), auto=False, scaleup=True, center=True)(image=pixels)
        pad = ours == PAD_VALUE
        assert (pad == (theirs == PAD_VALUE)).mean() > 0.98, "same padding region"
        assert geometry.resized_hw == tuple(round(s * geometry.scale) for s in (h, w))


# ---------------------------------------------------------------------------------------------- YOLO layout


def test_yolo_folder_boxes_in_input_pixels(yolo_folder: Path) -> None:
    ds = load_detection_dataset(yolo_folder, (160, 160))
    assert isinstance(ds, DetectionDataset)
    assert ds.images.shape == (3, 160, 160, 3) and ds.images.dtype == np.uint8
    assert ds.labelled and ds.boxes is not None and ds.classes is not None
    # a.png is 200x100: scale 0.8, padded 40 px top and bottom
    assert ds.classes[0].tolist() == [0, 1]
    np.testing.assert_allclose(ds.boxes[0], [[40, 60, 120, 100], [32, 52, 48, 68]], atol=1e-4)
    assert ds.boxes[0].dtype == np.float32
    assert ds.images[0, 0, 80].tolist() == [PAD_VALUE] * 3 and ds.images[0, 80, 80].tolist() == [200, 10, 10]
    assert ds.boxes[1].shape == (0, 4) and ds.classes[1].shape == (0,)  # no label file: no objects
    assert ds.boxes[2].shape == (0, 4)  # empty label file
    assert ds.num_objects == 2 and ds.num_classes == 2 and ds.class_names == ()


def test_subset_and_len(yolo_folder: Path) -> None:
    ds = load_detection_dataset(yolo_folder, (64, 64))
    sub = ds.subset([2, 0])
    assert len(sub) == 2 and sub.size_hw == (64, 64)
    assert sub.boxes is not None and len(sub.boxes[1]) == 2 and len(sub.boxes[0]) == 0


def test_classes_txt_names_and_range(yolo_folder: Path) -> None:
    (yolo_folder / "classes.txt").write_text("cat\ndog\n")
    assert load_detection_dataset(yolo_folder, (64, 64)).class_names == ("cat", "dog")
    (yolo_folder / "classes.txt").write_text("cat\n")
    with pytest.raises(DataError, match=r"a\.txt:2: class id 1 is outside the 1 class names"):
        load_detection_dataset(yolo_folder, (64, 64))


def test_folder_of_images_is_unlabelled(tmp_path: Path) -> None:
    _image(tmp_path / "x.png", 30, 40)
    _image(tmp_path / "y.png", 40, 30)
    ds = load_detection_dataset(tmp_path, (32, 32))
    assert len(ds) == 2 and not ds.labelled and ds.boxes is None and ds.num_classes is None


def test_images_folder_without_labels_is_unlabelled(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "x.png", 30, 40)
    assert not load_detection_dataset(tmp_path, (32, 32)).labelled


def test_polygon_label_becomes_its_bounding_box(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "p.png", 100, 100)
    _label(tmp_path / "labels" / "p.txt", "0 0.1 0.2 0.5 0.2 0.3 0.6")
    ds = load_detection_dataset(tmp_path, (100, 100))
    assert ds.boxes is not None
    np.testing.assert_allclose(ds.boxes[0], [[10, 20, 50, 60]], atol=1e-4)


@pytest.mark.parametrize(("line", "message"), [
    ("0 0.5 0.5 0.2", r"bad\.txt:2: expected 'class cx cy w h' \(5 values\), got 4 values"),
    ("0 0.5 abc 0.2 0.2", r"bad\.txt:2: 'abc' is not a number"),
    ("1.5 0.5 0.5 0.2 0.2", r"bad\.txt:2: class id '1.5' must be a non-negative integer"),
    ("-1 0.5 0.5 0.2 0.2", r"bad\.txt:2: class id '-1' must be a non-negative integer"),
    ("0 0.5 0.5 1.7 0.2", r"bad\.txt:2: coordinates must be normalized to 0\.\.1"),
])
def test_malformed_label_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    _image(tmp_path / "images" / "bad.png", 20, 20)
    _label(tmp_path / "labels" / "bad.txt", "0 0.5 0.5 0.2 0.2", line)
    with pytest.raises(DataError, match=message) as info:
        load_detection_dataset(tmp_path, (32, 32))
    assert "\n" not in str(info.value)
    assert isinstance(info.value, EdgepruneError)


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data not found"):
        load_detection_dataset(tmp_path / "nope", (32, 32))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="contains no images"):
        load_detection_dataset(tmp_path / "empty", (32, 32))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*x\.png"):
        load_detection_dataset(tmp_path / "broken", (32, 32))


# ---------------------------------------------------------------------------------------------- data.yaml


def _yaml_dataset(tmp_path: Path, names: str, path_line: str = "") -> Path:
    root = tmp_path / "ds"
    _image(root / "images" / "val" / "v.png", 50, 50)
    _label(root / "labels" / "val" / "v.txt", "2 0.5 0.5 0.4 0.4")
    _image(root / "images" / "train" / "t.png", 50, 50)
    _label(root / "labels" / "train" / "t.txt", "0 0.5 0.5 0.2 0.2", "1 0.2 0.2 0.1 0.1")
    yaml = root / "conf" / "data.yaml"
    yaml.parent.mkdir()
    yaml.write_text(f"{path_line}train: images/train\nval: images/val\nnames: {names}\n")
    return yaml


@pytest.mark.parametrize("names", ["[a, b, c]", "{0: a, 1: b, 2: c}"])
def test_data_yaml_val_split_relative_to_path(tmp_path: Path, names: str) -> None:
    yaml = _yaml_dataset(tmp_path, names, path_line="path: ..\n")
    ds = load_detection_dataset(yaml, (50, 50))
    assert ds.class_names == ("a", "b", "c") and len(ds) == 1
    assert ds.classes is not None and ds.classes[0].tolist() == [2]
    assert ds.boxes is not None
    np.testing.assert_allclose(ds.boxes[0], [[15, 15, 35, 35]], atol=1e-4)
    train = load_detection_dataset(yaml, (50, 50), split="train")
    assert train.num_objects == 2


def test_data_yaml_in_a_folder_is_read(tmp_path: Path) -> None:
    yaml = _yaml_dataset(tmp_path, "[a, b, c]", path_line="path: ..\n")
    moved = yaml.parent.parent / "data.yaml"
    moved.write_text(yaml.read_text().replace("path: ..\n", ""))
    assert load_detection_dataset(moved.parent, (50, 50)).class_names == ("a", "b", "c")


def test_data_yaml_errors(tmp_path: Path) -> None:
    yaml = _yaml_dataset(tmp_path, "[a, b]", path_line="path: ..\n")
    with pytest.raises(DataError, match=r"v\.txt:1: class id 2 is outside the 2 class names \(0\.\.1\)"):
        load_detection_dataset(yaml, (50, 50))
    with pytest.raises(DataError, match=r"has no 'test:' split \(it has: train, val\)"):
        load_detection_dataset(yaml, (50, 50), split="test")
    yaml.write_text("val: images/val\n")
    with pytest.raises(DataError, match="has no 'names:'"):
        load_detection_dataset(yaml, (50, 50))
    yaml.write_text("names: [a]\nval: [unclosed\n")
    with pytest.raises(DataError, match="is not valid YAML"):
        load_detection_dataset(yaml, (50, 50))
    yaml.write_text("names: {0: a, 2: b}\nval: x\n")
    with pytest.raises(DataError, match="without gaps"):
        load_detection_dataset(yaml, (50, 50))
    yaml.write_text("names: [a]\nval: nowhere\n")
    with pytest.raises(DataError, match="data not found: .*nowhere"):
        load_detection_dataset(yaml, (50, 50))


def test_dataset_validates_its_arrays() -> None:
    images = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(DataError, match="both be given"):
        DetectionDataset(images, [np.zeros((0, 4), np.float32)], None)
    with pytest.raises(DataError, match="must be float32"):
        DetectionDataset(images, [np.zeros((1, 4))], [np.zeros(1, np.int64)])
    with pytest.raises(DataError, match="class id 3, outside 0..1"):
        DetectionDataset(images, [np.zeros((1, 4), np.float32)], [np.array([3])], ("a", "b"))
    with pytest.raises(DataError, match="empty"):
        DetectionDataset(np.zeros((0, 8, 8, 3), np.uint8), None, None)


# ---------------------------------------------------------------------------------------------- COCO JSON


def test_coco_json(tmp_path: Path) -> None:
    _image(tmp_path / "val2017" / "one.jpg", 200, 100)
    _image(tmp_path / "val2017" / "two.jpg", 80, 80)
    doc = {
        "images": [{"id": 7, "file_name": "one.jpg", "width": 200, "height": 100},
                   {"id": 9, "file_name": "two.jpg", "width": 80, "height": 80}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 18, "bbox": [50, 25, 100, 50], "iscrowd": 0},
                        {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 10, 10], "iscrowd": 1}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    ds = load_detection_dataset(tmp_path, (160, 160))
    assert ds.class_names == ("car", "dog") and len(ds) == 2
    assert ds.classes is not None and ds.classes[0].tolist() == [1]  # the crowd box is left out
    assert ds.boxes is not None
    np.testing.assert_allclose(ds.boxes[0], [[40, 60, 120, 100]], atol=1e-4)
    assert ds.boxes[1].shape == (0, 4)
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps({**doc, "annotations": []}))
    assert load_detection_dataset(tmp_path, (160, 160)).num_objects == 1  # the val split's file is chosen
    doc["annotations"][0]["category_id"] = 5
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="category_id 5, not among 'categories'"):
        load_detection_dataset(tmp_path / "annotations" / "instances_val2017.json", (160, 160))

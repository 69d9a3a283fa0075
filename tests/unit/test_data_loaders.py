"""edgeprune.data: .npz and ImageFolder loaders, the digits demo data, ImageDataset and split_dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeprune.data.dataset import ImageDataset, split_dataset
from edgeprune.data.digits import load_digits_splits
from edgeprune.data.loaders import load_dataset, load_image_folder, load_npz
from edgeprune.errors import DataError, InputError

# ---------------------------------------------------------------------------------------------- npz


def test_load_npz_nhwc(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 4, 6, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 1, 0], dtype=np.int32)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    ds = load_npz(path)
    assert ds.images.shape == (5, 4, 6, 3)
    assert np.array_equal(ds.images, x)
    assert ds.labels is not None and ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [0, 1, 2, 1, 0]
    assert ds.num_classes == 3
    assert ds.class_names == ()
    assert ds.source == str(path)
    assert len(ds) == 5


def test_load_npz_nhw_gets_a_channel_axis_and_label_names(tmp_path: Path) -> None:
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = tmp_path / "gray.npz"
    np.savez_compressed(path, x=x, y=np.array([[1], [0]]), label_names=np.array(["cat", "dog"]))
    ds = load_npz(path)
    assert ds.images.shape == (2, 3, 3, 1)
    assert np.array_equal(ds.images[..., 0], x)
    assert ds.labels.tolist() == [1, 0]  # (N, 1) labels are flattened
    assert ds.class_names == ("cat", "dog")
    assert ds.num_classes == 2


def test_load_npz_without_labels(tmp_path: Path) -> None:
    path = tmp_path / "u.npz"
    np.savez(path, x=np.zeros((3, 2, 2, 3), dtype=np.uint8))
    ds = load_npz(path)
    assert ds.labels is None
    assert ds.num_classes is None


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, "no array 'x'"),
        ({"x": np.zeros((2, 4, 4, 3), np.float32)}, "'x' must be uint8"),
        ({"x": np.zeros((2, 4, 4, 3), np.uint8), "y": np.zeros(2, np.float32)}, "'y' must hold integer labels"),
        ({"x": np.zeros((2, 4, 4, 3), np.uint8), "y": np.zeros(3, np.int64)}, "3 labels for 2 images"),
        ({"x": np.zeros((2, 4, 4, 3), np.uint8), "y": np.array([0, -1])}, "non-negative"),
        ({"x": np.zeros((2, 4, 4, 2), np.uint8)}, "C in"),
        ({"x": np.zeros((0, 4, 4, 3), np.uint8)}, "empty"),
        ({"x": np.zeros(5, np.uint8)}, "shape"),
    ],
)
def test_load_npz_invalid_contents(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match):
        load_npz(path)


@pytest.mark.parametrize("content", [b"not an npz at all", b"PK\x03\x04truncated zip", b""])
def test_load_npz_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot read"):
        load_npz(path)


def test_load_npz_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError):
        load_npz(path)


def test_data_error_is_input_error() -> None:
    assert issubclass(DataError, InputError)
    assert DataError("x").exit_code == 2


# -------------------------------------------------------------------------------------- image folder


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    _png(root / "zebra" / "a.png", (255, 0, 0))
    _png(root / "zebra" / "b.png", (255, 0, 0), size=(20, 30))
    _png(root / "ant" / "c.png", (10, 200, 30))
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _png(root / ".hidden" / "x.png", (0, 0, 255))
    return root


def test_image_folder_rgb(folder: Path) -> None:
    ds = load_image_folder(folder, (6, 5), 3)
    assert ds.class_names == ("ant", "zebra")  # sorted, hidden folders skipped
    assert ds.images.shape == (3, 6, 5, 3)  # resized on read, .txt ignored
    assert ds.images.dtype == np.uint8
    assert ds.labels is not None and ds.labels.tolist() == [0, 1, 1]
    assert (ds.images[0] == np.array([10, 200, 30], dtype=np.uint8)).all()
    assert (ds.images[1:] == np.array([255, 0, 0], dtype=np.uint8)).all()
    assert ds.num_classes == 2


def test_image_folder_grayscale(folder: Path) -> None:
    ds = load_image_folder(folder, (4, 4), 1)
    assert ds.images.shape == (3, 4, 4, 1)
    # PIL's L = (299 R + 587 G + 114 B) / 1000
    assert (ds.images[0] == 124).all()
    assert (ds.images[1] == 76).all()


def test_image_folder_without_class_dirs_is_unlabelled(tmp_path: Path) -> None:
    _png(tmp_path / "one.png", (1, 2, 3))
    _png(tmp_path / "two.PNG", (4, 5, 6))
    ds = load_image_folder(tmp_path, (3, 3), 3)
    assert ds.labels is None
    assert ds.class_names == ()
    assert len(ds) == 2


def test_empty_folder_is_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="contains no images"):
        load_image_folder(tmp_path, (4, 4), 3)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "readme.md").write_text("hi")
    with pytest.raises(DataError, match="contains no images"):
        load_image_folder(tmp_path, (4, 4), 3)


def test_non_image_named_png_is_data_error(folder: Path) -> None:
    (folder / "ant" / "fake.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="cannot read image .*fake.png"):
        load_image_folder(folder, (4, 4), 3)


def test_truncated_png_is_data_error(tmp_path: Path) -> None:
    good = tmp_path / "c" / "good.png"
    _png(good, (9, 9, 9), size=(64, 64))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        load_image_folder(tmp_path, (4, 4), 3)


def test_load_dataset_dispatch(folder: Path, tmp_path: Path) -> None:
    assert len(load_dataset(folder, (4, 4), 3)) == 3
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((2, 4, 4, 3), np.uint8))
    assert len(load_dataset(str(path), (4, 4), 3)) == 2
    with pytest.raises(DataError, match="data not found"):
        load_dataset(tmp_path / "missing", (4, 4), 3)
    other = tmp_path / "d.csv"
    other.write_text("1,2,3")
    with pytest.raises(DataError, match="expected a directory of class folders or an .npz file"):
        load_dataset(other, (4, 4), 3)


# -------------------------------------------------------------------------------------------- digits


def test_digits_splits_sizes_and_stratification() -> None:
    train, test = load_digits_splits()
    assert (len(train), len(test)) == (1347, 450)
    assert train.images.shape == (1347, 8, 8, 1) and test.images.shape == (450, 8, 8, 1)
    assert train.images.dtype == np.uint8
    assert train.images.max() == 255 and train.images.min() == 0
    assert train.class_names == tuple(str(i) for i in range(10))
    assert train.num_classes == 10
    assert train.source == "demo-digits[train]" and test.source == "demo-digits[test]"
    train_counts = np.bincount(train.labels, minlength=10)
    test_counts = np.bincount(test.labels, minlength=10)
    from sklearn.datasets import load_digits

    full_counts = np.bincount(load_digits().target, minlength=10)
    assert (train_counts + test_counts == full_counts).all()
    # every class is split 25/75 to within one image
    assert (np.abs(test_counts - 0.25 * full_counts) <= 1).all()


def test_digits_splits_are_deterministic() -> None:
    a_train, a_test = load_digits_splits()
    b_train, b_test = load_digits_splits()
    assert np.array_equal(a_test.images, b_test.images)
    assert np.array_equal(a_train.labels, b_train.labels)


# ------------------------------------------------------------------------------------ ImageDataset


def _ds(n: int = 20, labels: bool = True, classes: int = 2) -> ImageDataset:
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, axis=1)
    y = (np.arange(n) % classes).astype(np.int64) if labels else None
    return ImageDataset(images, y, source="toy")


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (np.zeros((0, 2, 2, 3), np.uint8), None, "empty"),
        (np.zeros((2, 2, 2, 3), np.float32), None, "uint8"),
        (np.zeros((2, 2, 2), np.uint8), None, r"\(N, H, W, C\)"),
        (np.zeros((2, 2, 2, 4), np.uint8), None, "C in"),
        (np.zeros((2, 2, 2, 3), np.uint8), np.zeros(3, np.int64), "3 labels for 2 images"),
        (np.zeros((2, 2, 2, 3), np.uint8), np.zeros((2, 1), np.int64), "labels for 2 images"),
        (np.zeros((2, 2, 2, 3), np.uint8), np.array([0, -3]), "non-negative"),
    ],
)
def test_image_dataset_validation(images: np.ndarray, labels: np.ndarray | None, match: str) -> None:
    with pytest.raises(DataError, match=match):
        ImageDataset(images, labels, source="toy")


def test_subset() -> None:
    ds = _ds(6)
    sub = ds.subset(np.array([1, 4]), "[sub]")
    assert sub.images[:, 0, 0, 0].tolist() == [1, 4]
    assert sub.labels.tolist() == [1, 0]
    assert sub.source == "toy[sub]"


def test_split_dataset_stratified() -> None:
    ds = _ds(20, classes=2)
    first, rest = split_dataset(ds, 0.3, seed=3)
    assert (len(first), len(rest)) == (6, 14)  # 3 of the 10 images of each class
    assert sorted(first.images[:, 0, 0, 0].tolist() + rest.images[:, 0, 0, 0].tolist()) == list(range(20))
    assert np.bincount(first.labels).tolist() == [3, 3]
    assert np.bincount(rest.labels).tolist() == [7, 7]
    assert (np.diff(first.images[:, 0, 0, 0].astype(int)) > 0).all()  # indices kept in order
    assert first.source == "toy[split-a]" and rest.source == "toy[split-b]"
    again_first, _ = split_dataset(ds, 0.3, seed=3)
    assert np.array_equal(again_first.images, first.images)
    other_first, _ = split_dataset(ds, 0.3, seed=4)
    assert not np.array_equal(other_first.images, first.images)


def test_split_dataset_unlabelled() -> None:
    ds = _ds(10, labels=False)
    first, rest = split_dataset(ds, 0.3, seed=0)
    assert (len(first), len(rest)) == (3, 7)
    assert first.labels is None
    assert set(first.images[:, 0, 0, 0].tolist()).isdisjoint(rest.images[:, 0, 0, 0].tolist())
    # an extreme fraction still leaves at least one image on each side
    first, rest = split_dataset(ds, 0.0, seed=0)
    assert (len(first), len(rest)) == (1, 9)


def test_split_dataset_too_small() -> None:
    with pytest.raises(DataError, match="too few images"):
        split_dataset(_ds(1, labels=False), 0.5, seed=0)
    with pytest.raises(DataError, match="too few images"):
        split_dataset(_ds(4, classes=2), 0.1, seed=0)  # 0.1 * 2 rounds to 0 in every class

"""edgeprune.data.tensors: uint8 images to model input, and calibration subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeprune.data.dataset import ImageDataset
from edgeprune.data.tensors import calibration_batch, calibration_indices, to_model_input
from edgeprune.models.preprocessing import Preprocessing

RGB = Preprocessing(4, 4, 3, (0.5, 0.25, 0.0), (0.25, 0.5, 1.0))
GRAY = Preprocessing(4, 4, 1, (0.5,), (0.5,))


def const(n: int, h: int, w: int, values: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.array(values, dtype=np.uint8), (n, h, w, len(values))).copy()


def test_shape_dtype_and_normalisation() -> None:
    x = to_model_input(const(2, 4, 4, (255, 255, 255)), RGB)
    assert x.shape == (2, 3, 4, 4)
    assert x.dtype == torch.float32
    assert x.is_contiguous()
    # (1 - mean) / std per channel
    assert torch.allclose(x[:, 0], torch.full((2, 4, 4), 2.0))
    assert torch.allclose(x[:, 1], torch.full((2, 4, 4), 1.5))
    assert torch.allclose(x[:, 2], torch.full((2, 4, 4), 1.0))


def test_channel_order_is_rgb() -> None:
    x = to_model_input(const(1, 4, 4, (255, 0, 51)), Preprocessing(4, 4, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    assert x[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])


def test_grayscale_to_rgb() -> None:
    x = to_model_input(const(3, 4, 4, (51,)), RGB)
    assert x.shape == (3, 3, 4, 4)
    expected = [(0.2 - 0.5) / 0.25, (0.2 - 0.25) / 0.5, 0.2]
    for c in range(3):
        assert torch.allclose(x[:, c], torch.full((3, 4, 4), expected[c]))


def test_rgb_to_grayscale() -> None:
    x = to_model_input(const(1, 4, 4, (255, 0, 0)), GRAY)
    assert x.shape == (1, 1, 4, 4)
    assert torch.allclose(x, torch.full((1, 1, 4, 4), (0.299 - 0.5) / 0.5))
    y = to_model_input(const(1, 4, 4, (255, 255, 255)), GRAY)
    assert torch.allclose(y, torch.full((1, 1, 4, 4), 1.0), atol=1e-6)  # weights sum to 1


def test_resize_keeps_constant_images_constant() -> None:
    prep = Preprocessing(16, 12, 1, (0.0,), (1.0,))
    up = to_model_input(const(1, 8, 8, (128,)), prep)
    assert up.shape == (1, 1, 16, 12)
    assert torch.allclose(up, torch.full_like(up, 128 / 255), atol=1e-6)
    down = to_model_input(const(1, 64, 64, (64,)), Preprocessing(4, 4, 1, (0.0,), (1.0,)))
    assert torch.allclose(down, torch.full_like(down, 64 / 255), atol=1e-6)


def test_resize_averages_when_downscaling() -> None:
    # a 2x2 checkerboard of 0/255 downscaled to 1x1 with antialiasing averages to the middle grey
    images = np.array([[[0], [255]], [[255], [0]]], dtype=np.uint8)[None]
    x = to_model_input(images, Preprocessing(1, 1, 1, (0.0,), (1.0,)))
    assert x.shape == (1, 1, 1, 1)
    assert float(x) == pytest.approx(0.5, abs=1e-6)


def test_no_resize_is_exact() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 4, 4, 1), dtype=np.uint8)
    x = to_model_input(images, Preprocessing(4, 4, 1, (0.0,), (1.0,)))
    assert torch.allclose(x[:, 0], torch.from_numpy(images[..., 0]).float() / 255)


def test_calibration_indices_seeded_unique_sorted() -> None:
    a = calibration_indices(100, 10, seed=0)
    b = calibration_indices(100, 10, seed=0)
    c = calibration_indices(100, 10, seed=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(a) == 10 and len(np.unique(a)) == 10
    assert (np.diff(a) > 0).all()
    assert a.min() >= 0 and a.max() < 100


def test_calibration_indices_capped_at_dataset_size() -> None:
    assert calibration_indices(5, 50, seed=3).tolist() == [0, 1, 2, 3, 4]
    assert len(calibration_indices(5, 0, seed=3)) == 0


def test_calibration_batch() -> None:
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * 20
    ds = ImageDataset(np.repeat(np.repeat(images, 4, 1), 4, 2), None)
    batch = calibration_batch(ds, Preprocessing(4, 4, 1, (0.0,), (1.0,)), 3, seed=7)
    idx = calibration_indices(10, 3, seed=7)
    assert batch.shape == (3, 1, 4, 4)
    assert torch.allclose(batch[:, 0, 0, 0], torch.tensor(idx * 20 / 255, dtype=torch.float32))


def test_model_input_has_plain_nchw_strides_even_with_one_channel() -> None:
    # a permuted one-channel batch counts as contiguous but keeps channels-last strides, which took torch's
    # two-thread oneDNN backward of a thin pruned demo model into heap corruption
    for prep, channels in ((GRAY, 1), (RGB, 3)):
        x = to_model_input(const(5, 4, 4, (10,) * channels), prep)
        n, c, h, w = x.shape
        assert x.stride() == (c * h * w, h * w, w, 1)

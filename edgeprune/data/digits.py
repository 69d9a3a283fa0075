"""The built-in demo data: scikit-learn's bundled handwritten digits (1,797 8x8 grayscale images, 10 classes).

It ships inside scikit-learn, so the default ``fit`` works offline. The images are stored at their native
8x8 size; the demo model's preprocessing upscales them to 32x32. The train/test split is seeded and
stratified, so every run sees the same held-out images.
"""

from __future__ import annotations

import numpy as np

from edgeprune.data.dataset import ImageDataset, split_dataset

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25


def load_digits_splits() -> tuple[ImageDataset, ImageDataset]:
    """(train, test) splits of the digits images as uint8 (N, 8, 8, 1); test holds 25% of each class."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    names = tuple(str(n) for n in bunch.target_names)
    full = ImageDataset(pixels, bunch.target.astype(np.int64), names, "demo-digits")
    test, train = split_dataset(full, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return (
        ImageDataset(train.images, train.labels, names, "demo-digits[train]"),
        ImageDataset(test.images, test.labels, names, "demo-digits[test]"),
    )

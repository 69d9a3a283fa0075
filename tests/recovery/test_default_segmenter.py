"""The shapes segmenter: trained once on the generated set, cached under a recipe-named file with its validation
mIoU, and loaded from the cache afterwards (a one-epoch, eight-image recipe keeps this test fast; the real recipe
runs in tools/make_shapes_segmenter.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeprune.data import shapes_segmentation
from edgeprune.models.weights import load_weights
from edgeprune.models.zoo import build_architecture
from edgeprune.train import default_segmenter
from edgeprune.train.default_segmenter import (
    SEGMENTER_RECIPE,
    SEGMENTER_SPEC,
    SegmenterRecipe,
    trained_shapes_segmenter,
)

QUICK = SegmenterRecipe(epochs=1, batch_size=4, train_images=8)


def test_the_segmenter_is_trained_once_then_read_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(shapes_segmentation, "SHAPES_TRAIN_IMAGES", 8)
    monkeypatch.setattr(shapes_segmentation, "SHAPES_VAL_IMAGES", 4)
    trained = trained_shapes_segmenter(QUICK)
    assert trained.weights.is_file() and trained.weights.parent == tmp_path
    assert SEGMENTER_RECIPE in trained.weights.name and QUICK.tag() in trained.weights.name
    assert trained.num_classes == len(shapes_segmentation.SHAPES_CLASSES)
    assert 0.0 <= trained.val_miou <= 1.0 and 0.0 <= trained.val_pixel_accuracy <= 1.0 and trained.train_seconds > 0
    assert len(list((trained.train_dir / "masks").glob("*.png"))) == 8
    assert len(list((trained.val_dir / "images").glob("*.png"))) == 4
    # the weights load into the architecture fit builds from --model and --num-classes
    load_weights(build_architecture(SEGMENTER_SPEC, trained.num_classes).model, trained.weights)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached weights should have been used")

    monkeypatch.setattr(default_segmenter, "train_segmenter", no_training)
    again = trained_shapes_segmenter(QUICK)
    assert again == trained

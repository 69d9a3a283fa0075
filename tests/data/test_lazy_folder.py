"""A training folder larger than the in-memory limit is read batch by batch, and trains to the same weights."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from edgeprune.data.dataset import ImageDataset
from edgeprune.data.lazy_folder import LazyImageFolder, open_training_data
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.train.batches import FolderImages, InMemoryImages
from edgeprune.train.loop import TrainSpec, train_classifier

SIZE = (48, 48)
PREP = Preprocessing(48, 48, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 PNG images in 3 classes: 0.83 MB of pixels decoded."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"class{c}").mkdir()
        for i in range(40):
            pixels = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
            pixels[..., c] = np.clip(pixels[..., c].astype(int) + 80, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i:03d}.png")
    return root


def test_a_folder_over_the_limit_is_opened_lazily_and_read_within_it(folder: Path) -> None:
    limit = 300_000  # bytes: 36% of the folder's decoded pixels
    data = open_training_data(folder, SIZE, 3, in_memory_limit_bytes=limit)
    assert isinstance(data, LazyImageFolder) and data.decoded_bytes > 2.5 * limit
    assert len(data) == 120 and data.num_classes == 3 and data.labels is not None
    images = FolderImages(data, PREP, workers=0)  # in this process, so tracemalloc sees every read
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    tracemalloc.start()
    try:
        seen = sum(len(x) for x, _ in images.batches([order[i:i + 8] for i in range(0, 120, 8)]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 120
    assert peak < limit  # never the whole folder at once: a batch of pixels and its conversion


def test_a_folder_under_the_limit_is_read_into_memory(folder: Path) -> None:
    data = open_training_data(folder, SIZE, 3)
    assert isinstance(data, ImageDataset) and len(data) == 120 and data.num_classes == 3


def test_training_from_disk_with_workers_gives_the_weights_training_in_memory_gives(folder: Path) -> None:
    lazy = LazyImageFolder(folder, SIZE, 3)
    in_memory = lazy.subset(np.arange(len(lazy)))
    spec = TrainSpec(epochs=2, lr=0.05, batch_size=32, seed=1, augment="crop,flip", schedule="rewind")
    trained = []
    for images in (InMemoryImages(in_memory.images, torch.from_numpy(in_memory.labels), PREP),
                   FolderImages(lazy, PREP, workers=2)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                              nn.Flatten(), nn.Linear(4, 3))
        losses = train_classifier(model, images, None, spec)
        trained.append((model.state_dict(), losses))
    (memory_weights, memory_losses), (disk_weights, disk_losses) = trained
    assert disk_losses == pytest.approx(memory_losses, rel=1e-6)
    for key, value in memory_weights.items():
        assert torch.allclose(value.float(), disk_weights[key].float(), atol=1e-6), key

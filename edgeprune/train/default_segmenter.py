"""A trained segmenter to prune: LR-ASPP (MobileNetV3-Large) trained from scratch on the generated shapes set
(:mod:`edgeprune.data.shapes_segmentation`), once, then reused from the cache.

Cross-entropy over the pixels (255 ignored) weighted against the background's majority, AdamW under a one-cycle schedule, horizontal and vertical flips,
seeded shuffling: the same machine and thread count produce the same weights. The file name carries the recipe
version and its settings, so a change of recipe retrains instead of loading stale weights; its metadata keeps
the validation mIoU and the training time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from edgeprune.cache import cache_dir
from edgeprune.data.segmentation import IGNORE_MASK_VALUE, SegmentationDataset, load_segmentation_dataset
from edgeprune.data.shapes_segmentation import SHAPES_CLASSES, SHAPES_SIZE_PX, shapes_segmentation_splits
from edgeprune.data.tensors import to_model_input
from edgeprune.io_atomic import write_atomic
from edgeprune.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from edgeprune.models.zoo import build_architecture
from edgeprune.progress import progress_bar
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
from edgeprune.tasks.base import TaskScore
from edgeprune.tasks.segmentation import SegmentationTask, SegmentationTruth
from edgeprune.timing import monotonic_s

log = logging.getLogger(__name__)

SEGMENTER_SPEC = "torchvision:lraspp_mobilenet_v3_large"
SEGMENTER_RECIPE = "v1"
SEGMENTER_PREPROCESSING = Preprocessing(SHAPES_SIZE_PX, SHAPES_SIZE_PX, 3, IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class SegmenterRecipe:
    """How the shapes segmenter is trained.

    Attributes:
        epochs: passes over the training images.
        lr: AdamW's peak learning rate (one-cycle schedule).
        batch_size: images per step.
        weight_decay: AdamW's decoupled weight decay.
        seed: initialisation and shuffling seed.
        train_images: train on the first this many images only (None: all; a quick test's setting).
    """

    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 16
    weight_decay: float = 1e-4
    seed: int = 0
    train_images: int | None = None

    def tag(self) -> str:
        """The settings as part of a file name."""
        images = "all" if self.train_images is None else str(self.train_images)
        return f"{self.epochs}ep-lr{self.lr:g}-b{self.batch_size}-{images}img-seed{self.seed}"


DEFAULT_SEGMENTER_RECIPE = SegmenterRecipe()


@dataclass(frozen=True)
class TrainedSegmenter:
    """The cached weights of the shapes segmenter and what they reached.

    Attributes:
        weights: the safetensors file (a state dict of ``SEGMENTER_SPEC`` with ``num_classes`` classes).
        num_classes: classes (background and the shapes).
        val_miou: mIoU on the validation split, 0..1.
        val_pixel_accuracy: pixel accuracy on the validation split, 0..1.
        train_seconds: wall-clock training time when the weights were made.
        train_dir: the training split's folder; ``val_dir``: the validation split's.
    """

    weights: Path
    num_classes: int
    val_miou: float
    val_pixel_accuracy: float
    train_seconds: float
    train_dir: Path
    val_dir: Path


def segmenter_weights_path(recipe: SegmenterRecipe = DEFAULT_SEGMENTER_RECIPE) -> Path:
    """Where the weights of ``recipe`` are cached."""
    return cache_dir() / f"lraspp-shapes-{SEGMENTER_RECIPE}-{recipe.tag()}.safetensors"


def class_weights(masks: np.ndarray, num_classes: int) -> torch.Tensor:
    """Cross-entropy weights: each class's pixel share to the power -1/2, scaled to a mean of 1 (the background,
    most of every image, would otherwise drown the shapes); a class absent from ``masks`` gets the largest weight.

    >>> class_weights(np.array([[0, 0, 0, 1]]), 2).tolist()
    [0.7320508360862732, 1.2679491043090393]
    """
    counts = np.bincount(masks[masks != IGNORE_MASK_VALUE].reshape(-1), minlength=num_classes)[:num_classes]
    share = counts / max(1, counts.sum())
    weights = np.where(share > 0, 1.0 / np.sqrt(np.maximum(share, 1e-12)), 0.0)
    weights[share == 0] = weights.max() if weights.max() > 0 else 1.0
    return torch.from_numpy(weights / weights.mean()).float()


def train_segmenter(model: nn.Module, data: SegmentationDataset, recipe: SegmenterRecipe, num_classes: int,
                    prep: Preprocessing = SEGMENTER_PREPROCESSING) -> None:
    """Train ``model`` (returning (N, ``num_classes``, H, W) logits) on ``data``'s labelled images, in place, and
    leave it in eval mode with batch-norm statistics of its final weights."""
    assert data.masks is not None
    torch.manual_seed(recipe.seed)
    x = to_model_input(data.images, prep)
    y = torch.from_numpy(data.masks.astype(np.int64))
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, len(x) // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=recipe.lr, pct_start=0.15,
                                                   total_steps=recipe.epochs * steps_per_epoch)
    shuffle = torch.Generator().manual_seed(recipe.seed)
    weights = class_weights(data.masks, num_classes)
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(x), generator=shuffle)
        total = 0.0
        with progress_bar(f"training the shapes segmenter, epoch {epoch + 1}/{recipe.epochs}", steps_per_epoch) as advance:
            for step in range(steps_per_epoch):
                idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
                images, masks = x[idx], y[idx]
                flips = torch.rand(2, generator=shuffle)
                if flips[0] < 0.5:
                    images, masks = images.flip(-1), masks.flip(-1)
                if flips[1] < 0.5:
                    images, masks = images.flip(-2), masks.flip(-2)
                loss = F.cross_entropy(model(images), masks, weight=weights, ignore_index=IGNORE_MASK_VALUE)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach())
                advance(1)
        log.info("shapes segmenter epoch %d/%d: mean loss %.4f", epoch + 1, recipe.epochs, total / steps_per_epoch)
    # the running statistics lag the weights (torchvision's MobileNetV3 averages them with momentum 0.01):
    # replace them by the exact statistics of the final weights over the training images
    recalibrate_batchnorm(model, x)


def evaluate_segmenter(model: nn.Module, data: SegmentationDataset, num_classes: int,
                       prep: Preprocessing = SEGMENTER_PREPROCESSING) -> TaskScore:
    """``model``'s mIoU and pixel accuracy on ``data`` (PyTorch, eval mode)."""
    assert data.masks is not None
    task = SegmentationTask()
    x = to_model_input(data.images, prep)
    model.eval()
    with torch.no_grad():
        predictions = [task.decode(model(x[i:i + 1]).numpy()) for i in range(len(x))]
    return task.score(predictions, SegmentationTruth(data.masks, num_classes))


def trained_shapes_segmenter(recipe: SegmenterRecipe = DEFAULT_SEGMENTER_RECIPE) -> TrainedSegmenter:
    """The shapes segmenter's cached weights, training it first if they are not cached (about 6 minutes on one
    core with the default recipe); the generated data set is written on first use too."""
    train_dir, val_dir = shapes_segmentation_splits()
    classes = len(SHAPES_CLASSES)
    path = segmenter_weights_path(recipe)
    if path.is_file():
        try:
            load_file(str(path))
            with safe_open(str(path), "pt") as handle:
                meta = handle.metadata() or {}
            return TrainedSegmenter(path, classes, float(meta["val_miou"]), float(meta["val_pixel_accuracy"]),
                                    float(meta["train_seconds"]), train_dir, val_dir)
        except Exception as exc:  # a corrupt or foreign cache file is rebuilt, not fatal
            log.warning("cached segmenter weights %s are unusable (%s); retraining", path, exc)
    size = (SHAPES_SIZE_PX, SHAPES_SIZE_PX)
    train = load_segmentation_dataset(train_dir, size)
    if recipe.train_images is not None:
        train = train.subset(np.arange(min(recipe.train_images, len(train))))
    val = load_segmentation_dataset(val_dir, size)
    log.info("training %s on %d generated shapes images (first run only; cached in %s)", SEGMENTER_SPEC, len(train),
             path.parent)
    torch.manual_seed(recipe.seed)
    model = build_architecture(SEGMENTER_SPEC, classes).model
    started_s = monotonic_s()
    train_segmenter(model, train, recipe, classes)
    seconds = monotonic_s() - started_s
    score = evaluate_segmenter(model, val, classes)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"recipe": SEGMENTER_RECIPE, "spec": SEGMENTER_SPEC, "num_classes": str(classes),
            "val_miou": repr(score.metrics["miou"]), "val_pixel_accuracy": repr(score.metrics["pixel_accuracy"]),
            "train_seconds": repr(seconds)}
    write_atomic(path, lambda p: save_file(state, str(p), metadata=meta))
    log.info("shapes segmenter: val mIoU %.3f, pixel accuracy %.3f after %.0f s of training", score.metrics["miou"],
             score.metrics["pixel_accuracy"], seconds)
    return TrainedSegmenter(path, classes, score.metrics["miou"], score.metrics["pixel_accuracy"], seconds,
                            train_dir, val_dir)

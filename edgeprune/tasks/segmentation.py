"""Semantic segmentation: the prediction is each pixel's arg-max class; the metric is mIoU.

mIoU is the mean, over the classes that occur (in the truth or the predictions) among the labelled pixels, of
``|predicted ∩ true| / |predicted ∪ true|`` from one confusion matrix accumulated over every image; pixels whose
truth is :data:`IGNORE_INDEX` count nowhere. Without masks, agreement is the share of pixels whose class is the
reference model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgeprune.tasks.base import Task, TaskScore

#: the mask value of pixels that are not scored (object borders, "void"), as in PASCAL VOC
IGNORE_INDEX = 255


@dataclass(frozen=True)
class SegmentationTruth:
    """Class masks ``masks`` (N, H, W) of integer class ids (``IGNORE_INDEX``: not scored), ``num_classes`` classes."""

    masks: np.ndarray
    num_classes: int


def confusion_matrix(predictions: Sequence[np.ndarray], masks: np.ndarray, num_classes: int) -> np.ndarray:
    """``counts[true, predicted]`` (num_classes x num_classes, int64) over every pixel whose truth is a class id
    below ``num_classes`` (ignored pixels, and truth ids outside the model's classes, are left out).

    >>> confusion_matrix([np.array([[0, 1]])], np.array([[[0, 0]]]), 2).tolist()
    [[1, 1], [0, 0]]
    """
    counts = np.zeros(num_classes * num_classes, dtype=np.int64)
    for predicted, truth in zip(predictions, masks, strict=True):
        p, t = np.asarray(predicted, dtype=np.int64).reshape(-1), np.asarray(truth, dtype=np.int64).reshape(-1)
        scored = (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
        counts += np.bincount(t[scored] * num_classes + p[scored], minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def miou_from_confusion(counts: np.ndarray) -> float:
    """Mean IoU over the classes with a non-empty union (0.0 when no pixel is scored).

    >>> miou_from_confusion(np.array([[1, 1], [0, 0]]))   # class 0: 1/2; class 1: 0/1
    0.25
    """
    intersection = np.diag(counts).astype(np.float64)
    union = counts.sum(0) + counts.sum(1) - intersection
    present = union > 0
    return float(np.mean(intersection[present] / union[present])) if present.any() else 0.0


class SegmentationTask(Task):
    """One (1, classes, H, W) logits output per image: torchvision's segmentation models' ``out``."""

    name = "segmentation"
    metric_name = "mIoU"
    metric_key = "miou"
    metric_keys = ("miou", "pixel_accuracy")
    agreement_name = "pixel agreement"
    #: INT8 moves class boundaries by a pixel here and there; a model whose pixels change class beyond 5% has
    #: lost more than the boundary (on a 96x96 mask with a few objects, boundaries are about 5-10% of pixels)
    min_int8_agreement = 0.95
    min_agreement = 0.8  # pixels labelled as the original labels them

    def decode(self, output: np.ndarray) -> np.ndarray:
        logits = np.asarray(output)
        if logits.ndim == 4:
            logits = logits[0]
        return np.argmax(logits, axis=0).astype(np.uint8 if logits.shape[0] <= 256 else np.int32)

    def score(self, predictions: Sequence[Any], truth: Any) -> TaskScore:
        assert isinstance(truth, SegmentationTruth)
        counts = confusion_matrix(predictions, truth.masks, truth.num_classes)
        miou = miou_from_confusion(counts)
        scored = int(counts.sum())
        pixel_accuracy = float(np.trace(counts) / scored) if scored else 0.0
        return TaskScore(miou, {"miou": miou, "pixel_accuracy": pixel_accuracy})

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        same = sum(int(np.count_nonzero(np.asarray(p) == np.asarray(r))) for p, r in zip(predictions, reference,
                                                                                      strict=True))
        total = sum(int(np.asarray(r).size) for r in reference)
        return same / total if total else 1.0

    def output_distortion(self, output: torch.Tensor, reference: torch.Tensor) -> float:
        """The KL divergence of the per-pixel class probabilities, averaged over pixels."""
        kl = F.kl_div(F.log_softmax(output, dim=1), F.softmax(reference, dim=1), reduction="none")
        return float(kl.sum(dim=1).mean())

    def subset_truth(self, truth: Any, indices: np.ndarray) -> Any:
        if truth is None:
            return None
        return SegmentationTruth(np.asarray(truth.masks)[np.asarray(indices)], truth.num_classes)

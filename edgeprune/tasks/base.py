"""The task interface: how one image's raw model output becomes a prediction, and how predictions are scored.

A classifier's prediction is a class index and its score is top-1 accuracy; a detector's is a set of boxes
and its score is mAP; a segmenter's is a class per pixel and its score is mIoU. Without labels, every task compares the pruned model's predictions with the original
model's (its *agreement*), so label-free runs still measure what pruning cost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def class_kl(output: torch.Tensor, reference: torch.Tensor) -> float:
    """KL(reference ‖ output) of the class probabilities (dim 1 holds logits), averaged over images."""
    return float(F.kl_div(F.log_softmax(output, dim=1), F.softmax(reference, dim=1), reduction="batchmean"))


@dataclass(frozen=True)
class TaskScore:
    """A task's metrics over a dataset.

    Attributes:
        headline: the fraction ``--min-accuracy`` and the plots use (top-1, mAP50-95 or mIoU), 0..1.
        metrics: every metric by key (``top1``; ``map50_95``, ``map50``; ``miou``, ``pixel_accuracy``), fractions 0..1.
    """

    headline: float
    metrics: dict[str, float] = field(default_factory=dict)


class Task(ABC):
    """What a model's output means: decoding, scoring against labels, agreement between two models."""

    #: ``classification``, ``detection``, ``segmentation``
    name: str
    #: the headline metric's name as a person reads it (``top-1``, ``mAP50-95``)
    metric_name: str
    #: the headline metric's key in :attr:`TaskScore.metrics` and in report.json
    metric_key: str
    #: every metric :meth:`score` reports, headline first (``top1``; ``map50_95``, ``map50``)
    metric_keys: tuple[str, ...]
    #: how :meth:`agreement` reads in a sentence (``top-1 agreement``)
    agreement_name: str
    #: what the shipped model's agreement with the original is, after its percentage on the terminal (none: the
    #: agreement's name "with the original")
    agreement_phrase: str | None = None
    #: the agreement an INT8 model must keep with the float one for ``--precision auto`` to take it
    min_int8_agreement: float
    #: the agreement with the original below which a fit's shipped model counts as collapsed (``--min-agreement``
    #: overrides it): the fit keeps its results but exits 3 instead of reporting success
    min_agreement: float

    @abstractmethod
    def decode(self, output: np.ndarray) -> Any:
        """One image's raw output (batch size 1) as this task's prediction."""

    @abstractmethod
    def score(self, predictions: Sequence[Any], truth: Any) -> TaskScore:
        """``predictions`` (one per image) scored against ``truth`` (the task's labels for the same images)."""

    @abstractmethod
    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        """How far ``predictions`` reproduce ``reference`` (another model's, on the same images), 0..1."""

    def subset_truth(self, truth: Any, indices: np.ndarray) -> Any:
        """``truth`` of the images at ``indices``."""
        return None if truth is None else np.asarray(truth)[indices]

    def output_distortion(self, output: torch.Tensor, reference: torch.Tensor) -> float:
        """How far a batch of raw PyTorch outputs is from ``reference`` (the original model's on the same images).

        Zero when they are equal, larger the more the predictions move; only the order matters (depth pruning
        removes the block whose removal distorts least). The default reads dim 1 as class logits: the KL
        divergence from the reference's class probabilities, averaged over images.
        """
        return class_kl(output, reference)

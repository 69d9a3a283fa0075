"""Detection (YOLO outputs): the prediction is the boxes left after NMS; the metric is COCO mAP50-95.

Without labels, agreement is the mAP50-95 of the pruned model's boxes scored against the original model's
confident boxes (see :func:`~edgeprune.tasks.detection_metrics.detection_agreement`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgeprune.tasks.base import Task, TaskScore
from edgeprune.tasks.detection_metrics import (
    Detections,
    decode_yolo_output,
    detection_agreement,
    mean_average_precision,
)


@dataclass(frozen=True)
class DetectionTruth:
    """Ground-truth boxes per image: ``boxes[i]`` (K, 4) xyxy in input pixels, ``classes[i]`` (K,)."""

    boxes: list[np.ndarray]
    classes: list[np.ndarray]
    num_classes: int


class DetectionTask(Task):
    """One (1, 4 + classes, anchors) output per image, Ultralytics' export layout."""

    name = "detection"
    metric_name = "mAP50-95"
    metric_key = "map50_95"
    metric_keys = ("map50_95", "map50")
    #: the other model is the float one (INT8's check) or the original (the accuracy guard)
    agreement_name = "box agreement (mAP50-95 against the other model's boxes)"
    #: INT8 moves boxes by a pixel or two, which mAP50-95's strict IoU thresholds already count
    min_int8_agreement = 0.75
    # mAP50-95 against the original's own boxes: box edges move under pruning even when every object is found,
    # so the floor sits lower than a classifier's
    min_agreement = 0.5

    def decode(self, output: np.ndarray) -> Detections:
        return decode_yolo_output(np.asarray(output))

    def score(self, predictions: Sequence[Any], truth: Any) -> TaskScore:
        assert isinstance(truth, DetectionTruth)
        result = mean_average_precision(list(predictions), truth.boxes, truth.classes, truth.num_classes)
        return TaskScore(float(result.map50_95), {"map50_95": float(result.map50_95), "map50": float(result.map50)})

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        return float(detection_agreement(list(predictions), list(reference)))

    def output_distortion(self, output: torch.Tensor, reference: torch.Tensor) -> float:
        """Per image: the Bernoulli KL divergence of every anchor's class scores from the reference's, plus each
        anchor's box shift relative to the reference box's size, weighted by the reference's confidence there.

        Background anchors (scores near 0 in both) add almost nothing to either term, so the value follows the
        objects the original model sees. ``output`` is (N, 4 + classes, anchors): xywh in pixels, then sigmoid
        scores, Ultralytics' export layout.
        """
        eps = 1e-6
        scores = output[:, 4:].clamp(eps, 1 - eps)
        ref_scores = reference[:, 4:].clamp(eps, 1 - eps)
        class_kl = ref_scores * torch.log(ref_scores / scores) + \
            (1 - ref_scores) * torch.log((1 - ref_scores) / (1 - scores))
        ref_size = reference[:, 2:4].mean(dim=1).clamp(min=1.0)  # (N, anchors), pixels
        box_shift = (output[:, :4] - reference[:, :4]).abs().sum(dim=1) / ref_size
        confidence = reference[:, 4:].amax(dim=1)
        per_image = class_kl.sum(dim=(1, 2)) + (confidence * box_shift).sum(dim=1)
        return float(per_image.mean())

    def subset_truth(self, truth: Any, indices: np.ndarray) -> Any:
        if truth is None:
            return None
        return DetectionTruth([truth.boxes[i] for i in indices], [truth.classes[i] for i in indices],
                              truth.num_classes)

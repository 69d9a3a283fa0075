"""Detection accuracy: mAP50 and mAP50-95 by COCO's evaluation (faster-coco-eval, from in-memory COCO dicts),
and, without labels, the agreement of a model's detections with the original model's.

COCO's conventions hold: 101-point interpolated precision, IoU thresholds 0.50:0.05:0.95, at most
``max_detections_per_image`` (100) detections per image, a class without ground truth left out of the mean,
crowd-free ground truth. Boxes are xyxy in input pixels throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeprune.tasks.yolo_decode import Detections, decode_yolo_batch, decode_yolo_output

log = logging.getLogger(__name__)

__all__ = ["DetectionScore", "Detections", "decode_yolo_batch", "decode_yolo_output", "detection_agreement",
           "mean_average_precision"]

#: COCO's cap on the detections counted per image (its ``maxDets[-1]``)
COCO_MAX_DETECTIONS = 100


@dataclass(frozen=True)
class DetectionScore:
    """mAP at IoU 0.50 and averaged over IoU 0.50:0.95 (COCO's AP), each in 0..1."""

    map50: float
    map50_95: float
    num_images: int
    num_ground_truth: int
    num_detections: int

    def as_dict(self) -> dict[str, float | int]:
        """The score as plain numbers (for reports and logs)."""
        return {"map50": self.map50, "map50_95": self.map50_95, "num_images": self.num_images,
                "num_ground_truth": self.num_ground_truth, "num_detections": self.num_detections}


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def _coco_dicts(predictions: Sequence[Detections], boxes: Sequence[np.ndarray], classes: Sequence[np.ndarray],
                num_classes: int) -> tuple[dict, list[dict]]:
    """COCO ground truth (image ids 1..N, category ids 1..C) and the detections as a COCO result list."""
    images = [{"id": i + 1, "file_name": f"{i}", "width": 0, "height": 0} for i in range(len(boxes))]
    annotations, results = [], []
    for i, (b, c) in enumerate(zip(boxes, classes)):
        for xywh, cls in zip(_xywh(b), np.asarray(c).reshape(-1)):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(cls) + 1,
                                "bbox": xywh.tolist(), "area": float(xywh[2] * xywh[3]), "iscrowd": 0})
    for i, det in enumerate(predictions):
        for xywh, score, cls in zip(_xywh(det.boxes), det.scores, det.classes):
            results.append({"image_id": i + 1, "category_id": int(cls) + 1, "bbox": xywh.tolist(),
                            "score": float(score)})
    categories = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _check(predictions: Sequence[Detections], boxes: Sequence[np.ndarray], classes: Sequence[np.ndarray],
           num_classes: int) -> None:
    if not len(predictions) == len(boxes) == len(classes):
        raise ValueError(f"{len(predictions)} predictions, {len(boxes)} box lists and {len(classes)} class lists: "
                         "one of each per image")
    for name, arrays in (("ground-truth", classes), ("predicted", [p.classes for p in predictions])):
        for c in arrays:
            c = np.asarray(c)
            if len(c) and (c.min() < 0 or c.max() >= num_classes):
                raise ValueError(f"a {name} class id ({int(c.max())}) is outside 0..{num_classes - 1}")


def mean_average_precision(predictions: Sequence[Detections], boxes: Sequence[np.ndarray],
                           classes: Sequence[np.ndarray], num_classes: int,
                           max_detections_per_image: int = COCO_MAX_DETECTIONS) -> DetectionScore:
    """mAP50 and mAP50-95 of ``predictions`` (one :class:`Detections` per image) against ground truth ``boxes``
    (K, 4) xyxy and ``classes`` (K,) per image, by COCO's evaluation.

    With no ground truth in any image the score is 1.0 when nothing was detected either and 0.0 otherwise.
    """
    _check(predictions, boxes, classes, num_classes)
    num_gt = sum(len(np.asarray(c).reshape(-1)) for c in classes)
    num_det = sum(len(p) for p in predictions)
    if num_gt == 0:
        value = 1.0 if num_det == 0 else 0.0
        return DetectionScore(value, value, len(predictions), 0, num_det)
    from faster_coco_eval import COCO, COCOeval_faster

    gt_dict, results = _coco_dicts(predictions, boxes, classes, num_classes)
    ground_truth = COCO(gt_dict, print_function=log.debug)
    detected = ground_truth.loadRes(results)
    evaluation = COCOeval_faster(ground_truth, detected, iouType="bbox", print_function=log.debug)
    evaluation.params.maxDets = [1, 10, max_detections_per_image]
    evaluation.evaluate()
    evaluation.accumulate()
    # precision: (IoU thresholds, recall thresholds, classes, area ranges, max-detection settings); -1 where a
    # class has no ground truth. Area range 0 is "all"; the last max-detections setting is the cap.
    precision = np.asarray(evaluation.eval["precision"])[:, :, :, 0, -1]
    map50 = _mean_defined(precision[0])
    map50_95 = _mean_defined(precision)
    return DetectionScore(map50, map50_95, len(predictions), num_gt, num_det)


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else 0.0


def detection_agreement(predictions: Sequence[Detections], reference_predictions: Sequence[Detections],
                        score_threshold: float = 0.25) -> float:
    """Label-free accuracy: the mAP50-95 of ``predictions`` against the reference model's detections scoring at
    least ``score_threshold``, taken as ground truth. 1.0 when the two models detect the same.

    The reference's low-scoring detections are left out of the ground truth, while ``predictions`` keep all
    theirs, as an mAP evaluation expects; with no reference detection above the threshold in any image, the
    agreement is 1.0 when ``predictions`` have none above it either, else 0.0.
    """
    if len(predictions) != len(reference_predictions):
        raise ValueError(f"{len(predictions)} predictions against {len(reference_predictions)} reference ones")
    truth = [r.above(score_threshold) for r in reference_predictions]
    if sum(len(t) for t in truth) == 0:
        confident = sum(len(p.above(score_threshold)) for p in predictions)
        return 1.0 if confident == 0 else 0.0
    num_classes = 1 + max(int(d.classes.max()) for d in [*truth, *predictions] if len(d))
    score = mean_average_precision(predictions, [t.boxes for t in truth], [t.classes for t in truth], num_classes)
    return score.map50_95

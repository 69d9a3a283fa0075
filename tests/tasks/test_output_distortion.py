"""Each task's output distortion (what depth pruning orders blocks by): zero for equal outputs, growing with the
change a person would see in the predictions, and blind to what the task ignores."""

from __future__ import annotations

import torch

from edgeprune.tasks.classification import ClassificationTask
from edgeprune.tasks.detection import DetectionTask
from edgeprune.tasks.segmentation import SegmentationTask


def _yolo_output(scores: list[float], boxes: list[list[float]]) -> torch.Tensor:
    """(1, 4 + 1 class, anchors): one class, xywh boxes in pixels, sigmoid scores."""
    box = torch.tensor(boxes, dtype=torch.float32).T  # (4, anchors)
    return torch.cat([box, torch.tensor([scores])], dim=0)[None]


def test_classification_distortion_is_the_kl_of_class_probabilities() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    task = ClassificationTask()
    assert abs(task.output_distortion(logits, logits)) < 1e-6
    assert task.output_distortion(logits + 5.0, logits) < 1e-6  # a shift of every logit changes no probability
    assert task.output_distortion(logits.flip(1), logits) > task.output_distortion(logits * 0.9, logits) > 0


def test_detection_distortion_follows_the_objects_and_ignores_background_boxes() -> None:
    task = DetectionTask()
    boxes = [[50.0, 50.0, 20.0, 20.0], [10.0, 10.0, 8.0, 8.0]]
    reference = _yolo_output([0.9, 0.001], boxes)
    assert task.output_distortion(reference, reference) < 1e-9
    # a background anchor's box moving far costs almost nothing; the object's box moving a little costs more
    background_moved = _yolo_output([0.9, 0.001], [boxes[0], [90.0, 90.0, 30.0, 30.0]])
    object_moved = _yolo_output([0.9, 0.001], [[53.0, 50.0, 20.0, 20.0], boxes[1]])
    assert task.output_distortion(background_moved, reference) < task.output_distortion(object_moved, reference)
    # losing the object's confidence costs more than a small change of it
    faded = _yolo_output([0.3, 0.001], boxes)
    nudged = _yolo_output([0.85, 0.001], boxes)
    assert task.output_distortion(faded, reference) > task.output_distortion(nudged, reference) > 0


def test_segmentation_distortion_is_the_per_pixel_kl_averaged_over_pixels() -> None:
    task = SegmentationTask()
    reference = torch.zeros(1, 2, 4, 4)
    reference[:, 0] = 3.0  # every pixel class 0
    one_pixel = reference.clone()
    one_pixel[0, :, 0, 0] = torch.tensor([0.0, 3.0])
    every_pixel = reference.flip(1)
    assert abs(task.output_distortion(reference, reference)) < 1e-6
    small, large = task.output_distortion(one_pixel, reference), task.output_distortion(every_pixel, reference)
    assert 0 < small < large
    assert abs(large - 16 * small) < 1e-4  # an average over the 16 pixels, not a sum

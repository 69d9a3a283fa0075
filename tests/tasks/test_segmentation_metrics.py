"""edgeprune.tasks.segmentation: per-pixel arg-max decoding, mIoU and pixel accuracy from one confusion matrix
(255 ignored), pixel agreement, and the agreement limits it is judged by.

The partial case, worked by hand (2 classes, one 2x4 image, one pixel ignored)::

    truth       0 0 0 1        prediction  0 0 1 1
                1 1 255 0                  1 0 0 0

    counts[true, predicted]: true 0 -> {0: 3, 1: 1}; true 1 -> {0: 1, 1: 2}  (the 255 pixel counts nowhere)
    IoU(0) = 3 / (4 + 4 - 3) = 3/5;  IoU(1) = 2 / (3 + 3 - 2) = 1/2;  mIoU = 0.55;  pixel accuracy = 5/7
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.tasks.registry import task_named
from edgeprune.tasks.segmentation import (
    IGNORE_INDEX,
    SegmentationTask,
    SegmentationTruth,
    confusion_matrix,
    miou_from_confusion,
)
from edgeprune.validate.tolerances import SEGMENTATION_AGREEMENT, min_agreement, min_detection_agreement, tolerance_for

TRUTH = np.array([[[0, 0, 0, 1], [1, 1, IGNORE_INDEX, 0]]], np.uint8)
PREDICTED = np.array([[0, 0, 1, 1], [1, 0, 0, 0]], np.uint8)


def _logits(classes_hw: np.ndarray, num_classes: int) -> np.ndarray:
    """(1, classes, H, W) logits whose arg-max is ``classes_hw``."""
    return np.eye(num_classes, dtype=np.float32)[classes_hw].transpose(2, 0, 1)[None]


def test_decode_is_the_per_pixel_argmax() -> None:
    task = SegmentationTask()
    decoded = task.decode(_logits(PREDICTED, 3))
    assert decoded.shape == (2, 4) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, PREDICTED)
    np.testing.assert_array_equal(task.decode(_logits(PREDICTED, 3)[0]), PREDICTED)  # without the batch axis


def test_a_perfect_prediction_scores_one() -> None:
    masks = np.array([[[0, 1], [2, 2]], [[1, 1], [0, IGNORE_INDEX]]], np.uint8)
    predictions = [np.where(m == IGNORE_INDEX, 2, m) for m in masks]  # ignored pixels may be anything
    score = SegmentationTask().score(predictions, SegmentationTruth(masks, 3))
    assert score.headline == 1.0
    assert score.metrics == {"miou": 1.0, "pixel_accuracy": 1.0}


def test_the_partial_case_matches_the_hand_computed_confusion_matrix() -> None:
    counts = confusion_matrix([PREDICTED], TRUTH, 2)
    assert counts.tolist() == [[3, 1], [1, 2]]
    score = SegmentationTask().score([PREDICTED], SegmentationTruth(TRUTH, 2))
    assert score.metrics["miou"] == pytest.approx((3 / 5 + 1 / 2) / 2)
    assert score.metrics["pixel_accuracy"] == pytest.approx(5 / 7)
    assert score.headline == score.metrics["miou"]


def test_ignored_pixels_count_nowhere() -> None:
    everything_ignored = np.full((1, 2, 4), IGNORE_INDEX, np.uint8)
    assert confusion_matrix([PREDICTED], everything_ignored, 2).sum() == 0
    assert SegmentationTask().score([PREDICTED], SegmentationTruth(everything_ignored, 2)).metrics == {
        "miou": 0.0, "pixel_accuracy": 0.0}
    # changing the prediction under the ignored pixel changes nothing
    other = PREDICTED.copy()
    other[1, 2] = 1
    assert confusion_matrix([other], TRUTH, 2).tolist() == confusion_matrix([PREDICTED], TRUTH, 2).tolist()


def test_miou_averages_only_classes_that_occur() -> None:
    # 3 classes, class 2 neither true nor predicted anywhere: it is not averaged in
    counts = confusion_matrix([PREDICTED], TRUTH, 3)
    assert counts[2].sum() == 0 and counts[:, 2].sum() == 0
    assert miou_from_confusion(counts) == pytest.approx(0.55)
    # a class predicted but never true counts with IoU 0
    assert miou_from_confusion(np.array([[2, 1], [0, 0]])) == pytest.approx((2 / 3 + 0) / 2)


def test_the_confusion_matrix_accumulates_over_images() -> None:
    counts = confusion_matrix([PREDICTED, PREDICTED], np.concatenate([TRUTH, TRUTH]), 2)
    assert counts.tolist() == [[6, 2], [2, 4]]


def test_pixel_agreement_is_the_share_of_equal_pixels() -> None:
    task = SegmentationTask()
    reference = [PREDICTED, np.zeros((2, 4), np.uint8)]
    assert task.agreement(reference, reference) == 1.0
    changed = [PREDICTED.copy(), np.zeros((2, 4), np.uint8)]
    changed[0][0, 0] = 1
    changed[1][1, :2] = 3
    assert task.agreement(changed, reference) == pytest.approx(13 / 16)


def test_subset_truth_keeps_the_class_count() -> None:
    masks = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
    subset = SegmentationTask().subset_truth(SegmentationTruth(masks, 21), np.array([2, 0]))
    assert subset.num_classes == 21
    np.testing.assert_array_equal(subset.masks, masks[[2, 0]])
    assert SegmentationTask().subset_truth(None, np.array([0])) is None


def test_the_task_is_registered_with_its_names() -> None:
    task = task_named("segmentation")
    assert isinstance(task, SegmentationTask)
    assert (task.metric_key, task.metric_name, task.agreement_name) == ("miou", "mIoU", "pixel agreement")
    assert task.metric_keys[0] == task.metric_key
    assert 0.9 <= task.min_int8_agreement < 1.0


def test_agreement_limits_by_task_and_precision() -> None:
    assert min_agreement("segmentation", "fp32") == SEGMENTATION_AGREEMENT["fp32"]
    assert min_agreement("segmentation", "fp32", "int8") == SEGMENTATION_AGREEMENT["int8"]
    assert min_agreement("segmentation", "unknown-precision") == SEGMENTATION_AGREEMENT["fp32"]
    # the classifier's and the detector's limits are what they were
    for precisions in (("fp32",), ("fp32", "bf16"), ("int8", "fp32")):
        assert min_agreement("classification", *precisions) == tolerance_for(*precisions).min_top1_agreement
    assert min_agreement("detection", "fp32", "int8") == min_detection_agreement("fp32", "int8") == 0.5

"""edgeprune.tasks.detection_metrics: YOLO output decoding, mAP by COCO's evaluation, label-free agreement.

The hand-computed values follow COCO's rules: precision interpolated at 101 recall points (0, 0.01, ..., 1), IoU
thresholds 0.50, 0.55, ..., 0.95, and a detection matching a box when IoU >= threshold. A class whose best
reachable recall is 0.5 at precision 1 scores 51/101 (the recall points 0..0.50).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faster_coco_eval", reason="faster-coco-eval (the detection metric) is not installed")

from edgeprune.tasks.detection_metrics import (  # noqa: E402
    Detections,
    decode_yolo_batch,
    decode_yolo_output,
    detection_agreement,
    mean_average_precision,
)

HALF = 51 / 101  # AP of a class whose detections reach recall 0.5 at precision 1, then nothing more

GT_BOXES = np.array([[10, 10, 50, 50], [60, 60, 100, 100]], np.float32)


def _dets(boxes: np.ndarray, scores: list[float], classes: list[int]) -> Detections:
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(classes, np.int64))


def _shift_for_iou(iou: float, side: float = 40.0) -> float:
    """The horizontal shift of a square of ``side`` that leaves IoU ``iou`` with the original."""
    return side - 2 * side * iou / (1 + iou)


# ---------------------------------------------------------------------------------------------- mAP


def test_perfect_predictions_score_one() -> None:
    preds = [_dets(GT_BOXES, [0.9, 0.8], [0, 1])]
    score = mean_average_precision(preds, [GT_BOXES], [np.array([0, 1])], num_classes=2)
    assert score.map50 == pytest.approx(1.0) and score.map50_95 == pytest.approx(1.0)
    assert (score.num_images, score.num_ground_truth, score.num_detections) == (1, 2, 2)


def test_one_box_shifted_fails_the_strict_thresholds() -> None:
    """IoU 0.775: a match at 0.50..0.75 (6 thresholds), a miss at 0.80..0.95 (4)."""
    shifted = GT_BOXES.copy()
    shifted[1, [0, 2]] += _shift_for_iou(0.775)
    single = mean_average_precision([_dets(shifted[1:], [0.8], [0])], [GT_BOXES[1:]], [np.array([0])], 1)
    assert single.map50 == pytest.approx(1.0)
    assert single.map50_95 == pytest.approx(0.6)
    # two boxes of one class, the lower-scoring one shifted: recall 1 up to IoU 0.75, then 0.5
    pair = mean_average_precision([_dets(shifted, [0.9, 0.8], [0, 0])], [GT_BOXES], [np.array([0, 0])], 1)
    assert pair.map50 == pytest.approx(1.0)
    assert pair.map50_95 == pytest.approx((6 * 1.0 + 4 * HALF) / 10)


def test_a_missing_box_halves_recall() -> None:
    preds = [_dets(GT_BOXES[:1], [0.9], [0])]
    score = mean_average_precision(preds, [GT_BOXES], [np.array([0, 0])], num_classes=1)
    assert score.map50 == pytest.approx(HALF) and score.map50_95 == pytest.approx(HALF)


def test_a_higher_scoring_false_positive() -> None:
    """FP (0.95) then TP (0.9): precision 0.5 at recall 1 for every threshold → AP 0.5."""
    preds = [_dets(np.vstack([GT_BOXES[1:], GT_BOXES[:1]]), [0.95, 0.9], [0, 0])]
    score = mean_average_precision(preds, [GT_BOXES[:1]], [np.array([0])], num_classes=1)
    assert score.map50_95 == pytest.approx(0.5)


def test_wrong_class_is_a_miss_and_classes_without_truth_are_left_out() -> None:
    preds = [_dets(GT_BOXES, [0.9, 0.8], [0, 2])]  # the second box is class 1, detected as class 2
    score = mean_average_precision(preds, [GT_BOXES], [np.array([0, 1])], num_classes=3)
    assert score.map50 == pytest.approx(0.5)  # class 0: 1.0, class 1: 0.0, class 2 (no truth): left out


def test_empty_images() -> None:
    truth = [GT_BOXES, np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)]
    classes = [np.array([0, 0]), np.zeros(0, np.int64), np.zeros(0, np.int64)]
    perfect = [_dets(GT_BOXES, [0.9, 0.8], [0, 0]), Detections.empty(), Detections.empty()]
    assert mean_average_precision(perfect, truth, classes, 1).map50_95 == pytest.approx(1.0)
    # a low-scoring detection on an image without objects costs nothing: it ranks after every true positive
    low_fp = [perfect[0], _dets(GT_BOXES[:1], [0.1], [0]), Detections.empty()]
    assert mean_average_precision(low_fp, truth, classes, 1).map50_95 == pytest.approx(1.0)
    # nothing detected at all
    nothing = [Detections.empty()] * 3
    assert mean_average_precision(nothing, truth, classes, 1).map50_95 == 0.0
    # no ground truth anywhere: 1.0 when nothing is detected either, else 0.0
    empty_truth = [np.zeros((0, 4), np.float32)] * 3
    empty_classes = [np.zeros(0, np.int64)] * 3
    assert mean_average_precision(nothing, empty_truth, empty_classes, 1).map50_95 == 1.0
    assert mean_average_precision(low_fp, empty_truth, empty_classes, 1).map50_95 == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one of each per image"):
        mean_average_precision([Detections.empty()], [GT_BOXES, GT_BOXES], [np.array([0, 0])] * 2, 1)
    with pytest.raises(ValueError, match="outside 0..0"):
        mean_average_precision([Detections.empty()], [GT_BOXES], [np.array([0, 1])], 1)


def _random_case(seed: int) -> tuple[list[Detections], list[np.ndarray], list[np.ndarray]]:
    """Separated ground truth on a grid, one jittered detection per found box, far-away false positives.

    No detection overlaps two boxes and no box gets two detections, so COCO's greedy matching and Ultralytics'
    agree and only the AP integration differs.
    """
    rng = np.random.default_rng(seed)
    preds, boxes, classes = [], [], []
    for _ in range(12):
        cells = rng.choice(16, size=rng.integers(1, 6), replace=False)
        xy = np.stack([cells % 4, cells // 4], axis=1) * 100.0 + 20
        gt = np.concatenate([xy, xy + rng.uniform(30, 60, size=(len(xy), 2))], axis=1).astype(np.float32)
        cls = rng.integers(0, 3, size=len(gt))
        found = rng.random(len(gt)) < 0.8
        jitter = rng.normal(0, 3.0, size=gt.shape) * found[:, None]
        det_boxes = (gt + jitter)[found]
        det_cls = np.where(rng.random(len(gt)) < 0.9, cls, (cls + 1) % 3)[found]
        fp = np.array([[500, 500, 540, 540]] * rng.integers(0, 3), np.float32).reshape(-1, 4)
        all_boxes = np.vstack([det_boxes, fp])
        all_cls = np.concatenate([det_cls, rng.integers(0, 3, size=len(fp))])
        scores = rng.uniform(0.05, 1.0, size=len(all_boxes))
        order = np.argsort(-scores)
        preds.append(_dets(all_boxes[order], list(scores[order]), list(all_cls[order])))
        boxes.append(gt)
        classes.append(cls.astype(np.int64))
    return preds, boxes, classes


def test_matches_ultralytics_ap_per_class() -> None:
    pytest.importorskip("ultralytics", reason="ultralytics (the [yolo] extra) is not installed")
    from edgeprune.models.ultralytics_env import configure_ultralytics_offline

    configure_ultralytics_offline()
    import torch
    from ultralytics.utils.metrics import ap_per_class, box_iou

    preds, boxes, classes = _random_case(seed=3)
    thresholds = np.linspace(0.5, 0.95, 10)
    tp, conf, pred_cls = [], [], []
    for det, gt, cls in zip(preds, boxes, classes):
        iou = box_iou(torch.from_numpy(gt), torch.from_numpy(det.boxes)).numpy()  # (gt, det)
        same = cls[:, None] == det.classes[None, :]
        best = (iou * same).max(axis=0, initial=0.0)
        tp.append(best[:, None] >= thresholds[None, :])
        conf.append(det.scores)
        pred_cls.append(det.classes)
    ap = ap_per_class(np.concatenate(tp), np.concatenate(conf), np.concatenate(pred_cls),
                      np.concatenate(classes))[5]
    ours = mean_average_precision(preds, boxes, classes, num_classes=3)
    # Ultralytics integrates the interpolated curve (trapezoids), COCO samples it at 101 points
    assert ours.map50 == pytest.approx(float(ap[:, 0].mean()), abs=0.02)
    assert ours.map50_95 == pytest.approx(float(ap.mean()), abs=0.02)
    assert 0.3 < ours.map50_95 < 0.95  # a case with misses and false positives, not a trivial one


# ---------------------------------------------------------------------------------------------- decoding


def _raw_output(nc: int, columns: list[tuple[float, float, float, float, dict[int, float]]]) -> np.ndarray:
    out = np.zeros((4 + nc, len(columns)), np.float32)
    for a, (cx, cy, w, h, scores) in enumerate(columns):
        out[:4, a] = cx, cy, w, h
        for cls, score in scores.items():
            out[4 + cls, a] = score
    return out


def test_decode_converts_boxes_and_suppresses_per_class() -> None:
    out = _raw_output(2, [
        (30, 30, 40, 40, {0: 0.9}),
        (31, 30, 40, 40, {0: 0.8}),            # overlaps the first, same class: suppressed
        (31, 30, 40, 40, {1: 0.7}),            # same place, other class: kept
        (80, 80, 20, 10, {0: 0.6, 1: 0.5}),    # two labels on one anchor (multi-label)
        (10, 10, 4, 4, {0: 0.0005}),           # below the confidence threshold
    ])
    det = decode_yolo_output(out[None])
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.6, 0.5])
    assert det.classes.tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(det.boxes[0], [10, 10, 50, 50])
    np.testing.assert_allclose(det.boxes[2], [70, 75, 90, 85])
    single = decode_yolo_output(out, multi_label=False)
    assert single.classes.tolist() == [0, 1, 0]
    assert len(decode_yolo_output(out, max_detections=2)) == 2
    assert len(decode_yolo_output(out, conf_threshold=0.95)) == 0
    assert [len(d) for d in decode_yolo_batch(np.stack([out, out * 0]))] == [4, 0]
    with pytest.raises(ValueError, match=r"\(4 \+ nc, A\)"):
        decode_yolo_output(np.zeros((3, 10)))


def test_decode_matches_ultralytics_nms() -> None:
    pytest.importorskip("ultralytics", reason="ultralytics (the [yolo] extra) is not installed")
    from edgeprune.models.ultralytics_env import configure_ultralytics_offline

    configure_ultralytics_offline()
    import torch
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(0)
    nc, anchors = 3, 400
    out = np.concatenate([rng.uniform(20, 140, (2, anchors)), rng.uniform(5, 60, (2, anchors)),
                          rng.uniform(0, 1, (nc, anchors)) ** 4], axis=0).astype(np.float32)
    ours = decode_yolo_output(out)
    theirs = non_max_suppression(torch.from_numpy(out[None]), conf_thres=0.001, iou_thres=0.7, multi_label=True,
                                 max_det=300)[0].numpy()
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours.boxes, theirs[:, :4], atol=1e-3)
    np.testing.assert_allclose(ours.scores, theirs[:, 4], atol=1e-6)
    assert ours.classes.tolist() == theirs[:, 5].astype(int).tolist()


# ---------------------------------------------------------------------------------------------- agreement


def test_agreement_with_itself_is_one_and_falls_with_changes() -> None:
    preds, _, _ = _random_case(seed=5)
    assert detection_agreement(preds, preds) == pytest.approx(1.0)
    moved = [Detections(p.boxes + 6.0, p.scores, p.classes) for p in preds]
    assert detection_agreement(moved, preds) < 0.7
    dropped = [Detections(p.boxes[1:], p.scores[1:], p.classes[1:]) for p in preds]
    assert 0.0 < detection_agreement(dropped, preds) < 1.0
    # the reference's detections below the threshold are not ground truth: dropping only those costs nothing
    confident = [p.above(0.25) for p in preds]
    assert detection_agreement(confident, preds) == pytest.approx(1.0)


def test_agreement_without_confident_reference_detections() -> None:
    quiet = [_dets(GT_BOXES[:1], [0.1], [0])]
    assert detection_agreement(quiet, quiet) == 1.0
    assert detection_agreement([_dets(GT_BOXES[:1], [0.9], [0])], quiet) == 0.0
    with pytest.raises(ValueError, match="against"):
        detection_agreement(quiet, quiet * 2)

"""A YOLO detector's raw output to detections, as Ultralytics' validator post-processes it.

The output of an Ultralytics detector in export mode (and the first element of its eval-mode tuple) is one array
(B, 4 + nc, A): rows 0..3 are box centre-x, centre-y, width, height in input pixels, rows 4.. per-class sigmoid
scores, one column per anchor. Decoding keeps every (anchor, class) pair scoring above ``conf_threshold``
(multi-label, as Ultralytics validates), then class-wise NMS (``torchvision.ops.batched_nms``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Ultralytics' cap on the candidates entering NMS (the best-scoring ones are kept)
MAX_NMS_CANDIDATES = 30000


@dataclass(frozen=True, eq=False)
class Detections:
    """One image's detections: ``boxes`` float32 (D, 4) xyxy in input pixels, ``scores`` float32 (D,),
    ``classes`` int64 (D,), highest score first."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> Detections:
        """No detections."""
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def above(self, score_threshold: float) -> Detections:
        """The detections scoring at least ``score_threshold``."""
        keep = self.scores >= score_threshold
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])


def _cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def decode_yolo_output(output: np.ndarray, conf_threshold: float = 0.001, iou_threshold: float = 0.7,
                       max_detections: int = 300, multi_label: bool = True) -> Detections:
    """One image's YOLO output, (4 + nc, A) or (1, 4 + nc, A), to detections after class-wise NMS.

    The defaults are Ultralytics' validation settings (``conf=0.001``, ``iou=0.7``, ``max_det=300``).
    """
    import torch
    from torchvision.ops import batched_nms

    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2 or out.shape[0] < 5:
        raise ValueError(f"expected a YOLO output of shape (4 + nc, A) or (1, 4 + nc, A), got {np.shape(output)}")
    boxes = _cxcywh_to_xyxy(out[:4].T)
    scores = out[4:].T  # (A, nc)
    if multi_label:
        anchor, cls = np.nonzero(scores > conf_threshold)
        score = scores[anchor, cls]
    else:
        cls = scores.argmax(axis=1)
        score = scores[np.arange(len(scores)), cls]
        anchor = np.flatnonzero(score > conf_threshold)
        cls, score = cls[anchor], score[anchor]
    if len(score) == 0:
        return Detections.empty()
    if len(score) > MAX_NMS_CANDIDATES:
        top = np.argsort(-score, kind="stable")[:MAX_NMS_CANDIDATES]
        anchor, cls, score = anchor[top], cls[top], score[top]
    keep = batched_nms(torch.from_numpy(boxes[anchor]), torch.from_numpy(score), torch.from_numpy(cls),
                       iou_threshold).numpy()[:max_detections]
    return Detections(boxes[anchor[keep]].astype(np.float32), score[keep].astype(np.float32),
                      cls[keep].astype(np.int64))


def decode_yolo_batch(output: np.ndarray, **kwargs: float) -> list[Detections]:
    """A batch's YOLO output (B, 4 + nc, A) to one :class:`Detections` per image (see :func:`decode_yolo_output`)."""
    out = np.asarray(output)
    if out.ndim != 3:
        raise ValueError(f"expected a batch of YOLO outputs (B, 4 + nc, A), got shape {out.shape}")
    return [decode_yolo_output(o, **kwargs) for o in out]  # type: ignore[arg-type]

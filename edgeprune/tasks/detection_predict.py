"""A PyTorch YOLO detector run over letterboxed images, its outputs decoded to :class:`Detections`, and scored.

The model takes float RGB in 0..1, NCHW, and returns the (B, 4 + nc, A) output of an Ultralytics detector: alone
in export mode, or first in the (predictions, raw) tuple of eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeprune.data.detection_dataset import DetectionDataset
from edgeprune.tasks.detection_metrics import DetectionScore, mean_average_precision
from edgeprune.tasks.yolo_decode import Detections, decode_yolo_batch


def images_to_yolo_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB to float32 (N, 3, H, W) in 0..1, as Ultralytics feeds its detectors."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def yolo_output(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The (B, 4 + nc, A) output of ``model`` on ``inputs`` (the first element when it returns a tuple)."""
    out = model(inputs)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 3:
        raise ValueError(f"expected the detector to return a (B, 4 + nc, A) tensor, got {type(out).__name__}")
    return out


@torch.no_grad()
def predict_detections(model: nn.Module, images: np.ndarray, batch_size: int = 32,
                       **decode_kwargs: float) -> list[Detections]:
    """One :class:`Detections` per image of ``images`` (uint8 NHWC), with the model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        detections: list[Detections] = []
        for start in range(0, len(images), batch_size):
            out = yolo_output(model, images_to_yolo_input(images[start:start + batch_size]))
            detections.extend(decode_yolo_batch(out.float().numpy(), **decode_kwargs))
        return detections
    finally:
        model.train(was_training)


def evaluate_detector(model: nn.Module, dataset: DetectionDataset, batch_size: int = 32) -> DetectionScore:
    """mAP50 and mAP50-95 of ``model`` on the labelled ``dataset`` (Ultralytics' validation decoding)."""
    if dataset.boxes is None or dataset.classes is None:
        raise ValueError(f"{dataset.source}: mAP needs labelled data")
    predictions = predict_detections(model, dataset.images, batch_size)
    predicted = 1 + max((int(p.classes.max()) for p in predictions if len(p)), default=0)
    num_classes = max(dataset.num_classes or 1, predicted)
    return mean_average_precision(predictions, dataset.boxes, dataset.classes, num_classes)

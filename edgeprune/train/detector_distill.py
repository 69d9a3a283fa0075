"""Distillation of a pruned YOLO detector from the original, on the Detect head's raw outputs (no labels needed).

The head predicts, per anchor, a distribution over ``reg_max`` distances for each box side (DFL) and one logit
per class. The student matches the teacher's:

* **class scores**: the Bernoulli KL(teacher ‖ student) of every anchor's class probabilities (binary
  cross-entropy against the teacher's probabilities, less their entropy; the teacher's "this is background" is
  knowledge too);
* **box sides**: KL(teacher ‖ student) of the softened side distributions (temperature ``T``, scaled by T²),
  weighted per anchor by the teacher's highest class probability, so the boxes of confident anchors count and
  the thousands of background anchors do not (as in localization distillation, Zheng et al. 2022).

The teacher runs in eval mode without gradients, on the same augmented batch as the student.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: softening of the box-side distributions
BOX_TEMPERATURE = 2.0


@contextlib.contextmanager
def raw_head_outputs(model: nn.Module) -> Iterator[None]:
    """Within the block, an eval-mode YOLO ``model`` returns (decoded, raw dict) rather than the export tensor."""
    head = model.model[-1]  # type: ignore[index]
    previous = head.export
    head.export = False
    try:
        yield
    finally:
        head.export = previous


def raw_predictions(output: Any) -> dict[str, torch.Tensor]:
    """The raw head dict ({"boxes": (B, 4 x reg_max, A), "scores": (B, classes, A)}) from a YOLO forward in train
    mode (the dict itself) or in eval mode under :func:`raw_head_outputs` (a (decoded, dict) pair)."""
    raw = output[1] if isinstance(output, (tuple, list)) else output
    if not isinstance(raw, dict) or "boxes" not in raw or "scores" not in raw:
        raise TypeError("expected the raw outputs of an Ultralytics Detect head")
    return raw


class YoloDistillationLoss:
    """``loss(student_raw, inputs)``: the student's raw head dict against the frozen teacher's on ``inputs``."""

    def __init__(self, teacher: nn.Module, temperature: float = BOX_TEMPERATURE, box_weight: float = 1.0,
                 class_weight: float = 1.0) -> None:
        self.teacher = teacher.eval()
        self.reg_max = int(teacher.model[-1].reg_max)  # type: ignore[index]
        self.temperature, self.box_weight, self.class_weight = temperature, box_weight, class_weight

    def to(self, device: torch.device) -> "YoloDistillationLoss":
        """A copy whose teacher (copied) runs on ``device``: for training on a GPU."""
        moved = copy.copy(self)
        moved.teacher = copy.deepcopy(self.teacher).to(device)
        return moved

    def __call__(self, student_output: Any, inputs: torch.Tensor) -> torch.Tensor:
        student = raw_predictions(student_output)
        with torch.no_grad(), raw_head_outputs(self.teacher):
            teacher = raw_predictions(self.teacher(inputs))
        t_scores, s_scores = teacher["scores"].float(), student["scores"].float()
        target = t_scores.sigmoid()  # minus the teacher's own entropy: a Bernoulli KL, zero when they agree
        class_loss = (F.binary_cross_entropy_with_logits(s_scores, target)
                      - F.binary_cross_entropy_with_logits(t_scores, target))
        batch, _, anchors = student["boxes"].shape
        temp = self.temperature
        s_sides = student["boxes"].float().view(batch, 4, self.reg_max, anchors)
        t_sides = teacher["boxes"].float().view(batch, 4, self.reg_max, anchors)
        kl = F.kl_div(F.log_softmax(s_sides / temp, 2), F.log_softmax(t_sides / temp, 2), log_target=True,
                      reduction="none").sum(2).mean(1)  # (B, A): mean over the four sides
        weight = t_scores.sigmoid().amax(1)  # (B, A): how confident the teacher is that something is there
        box_loss = (kl * weight).sum() / weight.sum().clamp_min(1e-6) * temp * temp
        return self.class_weight * class_loss + self.box_weight * box_loss

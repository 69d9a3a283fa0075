"""Training losses: cross-entropy, and knowledge distillation from the original (unpruned) model.

Distillation (Hinton, Vinyals, Dean 2015) trains the pruned student to match the original's softened
class probabilities: ``alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y)``. The
teacher's "dark knowledge" carries more signal per image than the label, which matters for the short
fine-tunes of recovery, and it needs no labels: without labels the loss is the distillation term alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: loss(student_logits, inputs, labels_or_None) → scalar
LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def cross_entropy_loss(logits: torch.Tensor, _inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Plain cross-entropy; labels are required."""
    if labels is None:
        raise ValueError("cross-entropy training needs labels")
    return F.cross_entropy(logits, labels)


class DistillationLoss:
    """Knowledge-distillation loss against a frozen teacher (evaluated in eval mode, without gradients)."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9) -> None:
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError("temperature must be > 0 and alpha in [0, 1]")
        self.teacher = teacher.eval()
        self.temperature, self.alpha = temperature, alpha

    def to(self, device: torch.device) -> "DistillationLoss":
        """A copy whose teacher (copied) runs on ``device``: for training on a GPU."""
        moved = copy.copy(self)
        if self.teacher is not None:
            moved.teacher = copy.deepcopy(self.teacher).to(device)
        return moved

    def __call__(self, logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        t = self.temperature
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        soft = F.kl_div(F.log_softmax(logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                        reduction="batchmean") * (t * t)
        if labels is None or self.alpha == 1.0:
            return soft
        return self.alpha * soft + (1 - self.alpha) * F.cross_entropy(logits, labels)

"""The fine-tune loss of a pruned segmentation model: per-pixel cross-entropy on the masks, distillation from
the original's per-pixel class probabilities, or both.

Distillation is Hinton et al.'s (2015), applied at every pixel: ``alpha · T² · KL(softmax(t/T) ‖ softmax(s/T))``,
averaged over pixels, plus ``(1 − alpha)`` times the cross-entropy where masks exist (pixels marked 255 are not
scored). Without masks the distillation term is the loss.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

#: the mask value of pixels that are not scored (PASCAL VOC's convention)
IGNORE_INDEX = 255


class SegmentationLoss:
    """``loss(logits (N, C, H, W), inputs, masks (N, H, W) or None)``; ``teacher``: distil from it."""

    def __init__(self, teacher: nn.Module | None = None, temperature: float = 4.0, alpha: float = 0.9) -> None:
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError("temperature must be > 0 and alpha in [0, 1]")
        self.teacher = teacher.eval() if teacher is not None else None
        self.temperature, self.alpha = temperature, alpha

    def to(self, device: torch.device) -> "SegmentationLoss":
        """A copy whose teacher (copied) runs on ``device``: for training on a GPU."""
        moved = copy.copy(self)
        if self.teacher is not None:
            moved.teacher = copy.deepcopy(self.teacher).to(device)
        return moved

    def __call__(self, logits: torch.Tensor, inputs: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        if self.teacher is None:
            if masks is None:
                raise ValueError("a segmentation fine-tune without masks needs distillation (--distill)")
            return F.cross_entropy(logits, masks.long(), ignore_index=IGNORE_INDEX)
        t = self.temperature
        with torch.no_grad():
            target = F.log_softmax(self.teacher(inputs) / t, dim=1)
        kd = F.kl_div(F.log_softmax(logits / t, dim=1), target, log_target=True, reduction="none").sum(1).mean()
        kd = kd * t * t
        if masks is None:
            return kd
        return self.alpha * kd + (1 - self.alpha) * F.cross_entropy(logits, masks.long(), ignore_index=IGNORE_INDEX)

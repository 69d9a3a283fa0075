"""Feature hints: distillation that also matches the original's intermediate feature maps (FitNets, Romero et al.
2015), for the short fine-tunes of recovery.

The hints sit at the outputs of the model's *stages*: its top-level children that contain layers of their own
(``layer1..4`` of ResNets, ``features`` of MobileNets) and return a 4-D feature map with the same shape in the
pruned student as in the original. Depth pruning keeps every stage's output shape, so each stage gets a hint;
channel pruning of a stage's output (a residual stream) changes its shape and that stage is skipped — its
channels would need matching by index, which these hints do not attempt. The hint of a stage is the mean squared
error between the two feature maps divided by the mean square of the original's (scale-free across stages);
the loss adds ``weight`` times the mean over the stages to :class:`~edgeprune.train.distill.DistillationLoss`.

Measured on cifar-resnet56 with 15 of 25 blocks removed (``tools/bench/recipe_probes.py``): four distillation
epochs over the 50,000 JPEG-decoded training images reach 91.05% lossless top-1 with logits alone, 92.53% with
these hints at weight 1 (the original: 92.72%).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.train.distill import DistillationLoss

log = logging.getLogger(__name__)

#: weight of the mean stage hint next to the distillation term (the value measured in the recipe probes)
FEATURE_HINT_WEIGHT = 1.0


def _stage_outputs(model: nn.Module, example: torch.Tensor) -> dict[str, torch.Size]:
    """Output shapes of the model's stages (top-level children with children of their own) on ``example``;
    the model is run in eval mode and left in the mode it was in."""
    shapes: dict[str, torch.Size] = {}
    handles = []
    was_training = model.training
    for name, child in model.named_children():
        if any(True for _ in child.children()):
            handles.append(child.register_forward_hook(
                lambda _m, _a, out, name=name: shapes.__setitem__(name, out.shape)
                if isinstance(out, torch.Tensor) and out.dim() == 4 else None))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return shapes


def hinted_stages(student: nn.Module, teacher: nn.Module, example: torch.Tensor) -> list[str]:
    """Stages whose 4-D output has the same shape in ``student`` and ``teacher`` (in model order)."""
    ours, theirs = _stage_outputs(student, example), _stage_outputs(teacher, example)
    skipped = [n for n in ours if n in theirs and ours[n] != theirs[n]]
    if skipped:
        log.info("feature hints: stage(s) %s skipped (pruning changed their output shape)", ", ".join(skipped))
    return [n for n in ours if theirs.get(n) == ours[n]]


class FeatureHintLoss:
    """Distillation plus normalised stage-output hints; call :meth:`close` to remove the forward hooks."""

    def __init__(self, student: nn.Module, teacher: nn.Module, example: torch.Tensor, temperature: float,
                 alpha: float, weight: float = FEATURE_HINT_WEIGHT) -> None:
        self.distill = DistillationLoss(teacher, temperature, alpha)
        self.weight = weight
        self.stages = hinted_stages(student, teacher, example)
        self._outputs: dict[tuple[str, str], torch.Tensor] = {}
        self._handles: list[Any] = []
        for side, model in (("student", student), ("teacher", teacher)):
            for name in self.stages:
                self._handles.append(model.get_submodule(name).register_forward_hook(
                    lambda _m, _a, out, key=(side, name): self._outputs.__setitem__(key, out)))

    def __call__(self, logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        loss = self.distill(logits, inputs, labels)  # runs the teacher: its hooks record its stage outputs
        if not self.stages:
            return loss
        hint = sum(F.mse_loss(self._outputs[("student", n)], self._outputs[("teacher", n)])
                   / self._outputs[("teacher", n)].pow(2).mean().clamp_min(1e-12) for n in self.stages)
        return loss + self.weight * hint / len(self.stages)

    def close(self) -> None:
        """Remove the hooks from both models (the student ships without them)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._outputs.clear()

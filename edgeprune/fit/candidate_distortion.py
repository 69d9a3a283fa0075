"""How far a width candidate moves the model's output, as the recovery leaves it before fine-tuning.

The uniform-cut guard (:mod:`edgeprune.fit.loop.guard`) ranks two candidates measured at the same latency by this
figure: each is rebuilt by :meth:`edgeprune.fit.recover.Recovery.rebuild` (slim copy, least-squares reconstruction
and batch-norm re-estimation where the run does them), run in PyTorch on the first calibration images, and its
outputs compared with the outputs of the model the step prunes by the task's own distortion (class KL for
classifiers, the score KL and box shift for detectors, per-pixel KL for segmenters), as depth pruning orders blocks.
Calibration images only: the evaluation images never choose what ships.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from edgeprune.fit.depth import DISTORTION_IMAGES
from edgeprune.prune.blocks import batched_outputs
from edgeprune.prune.groups import ChannelGroup
from edgeprune.train.device import placed_on

log = logging.getLogger(__name__)

#: (keep, reference model, groups) -> the candidate rebuilt as the recovery leaves it before fine-tuning
Rebuild = Callable[[nn.Module, dict[str, list[int]], list[ChannelGroup]], nn.Module]


class CandidateDistortion:
    """``self(keep)``: the output distortion of the candidate keeping ``keep`` against ``reference``."""

    def __init__(self, reference: nn.Module, groups: list[ChannelGroup], calibration: torch.Tensor, rebuild: Rebuild,
                 distortion_of: Callable[[torch.Tensor, torch.Tensor], float], device: torch.device,
                 images: int = DISTORTION_IMAGES) -> None:  # as many as depth pruning uses
        self.reference, self.groups, self.rebuild = reference, groups, rebuild
        self.images = calibration[:images]
        self.distortion_of, self.device = distortion_of, device
        self._reference_outputs: torch.Tensor | None = None

    def _outputs(self, model: nn.Module) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            with placed_on(model, self.device), torch.no_grad():
                return batched_outputs(model, self.images, 64)
        finally:
            model.train(was_training)

    def __call__(self, keep: dict[str, list[int]]) -> float:
        if self._reference_outputs is None:
            self._reference_outputs = self._outputs(self.reference)
        candidate = self.rebuild(self.reference, keep, self.groups)
        return max(float(self.distortion_of(self._outputs(candidate), self._reference_outputs)), 0.0)

"""Learning-rate schedules for training and recovery fine-tuning.

* ``rewind`` — learning-rate rewinding (Renda, Frankle, Carbin 2020, "Comparing rewinding and fine-tuning
  in neural network pruning"): after pruning, retrain from the pruned weights with the *tail of the
  original training schedule* instead of a small constant rate. The original schedule of a user's model is
  unknown, so edgeprune replays the tail of the standard step schedule of CIFAR/ImageNet ResNet training
  (peak rate, then /10, then /100) compressed into the fine-tune budget: the peak for the first half of the
  steps, a tenth for the next quarter, a hundredth for the last quarter. The peak is ``--finetune-lr``.
* ``constant`` — classic fine-tuning at one small rate (Han et al. 2015; Renda et al.'s baseline).
* ``one-cycle`` — warm-up then cosine decay; used to train the demo model from scratch.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from edgeprune.config import FINETUNE_SCHEDULES
from edgeprune.errors import UnknownNameError

SCHEDULES = FINETUNE_SCHEDULES


class _RewindTail:
    """Step multiplier of the rewound schedule (a picklable callable, so scheduler state saves cleanly)."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps = max(1, total_steps)

    def __call__(self, step: int) -> float:
        done = step / self.total_steps
        return 1.0 if done < 0.5 else 0.1 if done < 0.75 else 0.01


def make_scheduler(optimiser: Optimizer, name: str, peak_lr: float, total_steps: int) -> LRScheduler:
    """The scheduler ``name`` over ``total_steps`` optimiser steps with peak rate ``peak_lr``."""
    if name == "rewind":
        return LambdaLR(optimiser, _RewindTail(total_steps))
    if name == "constant":
        return LambdaLR(optimiser, lambda step: 1.0)
    if name == "one-cycle":
        return OneCycleLR(optimiser, max_lr=peak_lr, total_steps=max(1, total_steps), pct_start=0.15)
    raise UnknownNameError("learning-rate schedule", name, SCHEDULES)

"""Supervised training of a classifier on in-memory tensors (used for the demo model and for fine-tuning)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSpec:
    """Optimiser settings: SGD with momentum and a cosine learning-rate decay over all steps."""

    epochs: int
    lr: float = 0.01
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0


EpochCallback = Callable[[int, float], None]


def train_classifier(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    spec: TrainSpec,
    on_epoch: EpochCallback | None = None,
) -> list[float]:
    """Train ``model`` in place with cross-entropy; returns the mean loss of each epoch.

    Random flips are not applied (digits and many edge tasks are not flip-invariant); shuffling is seeded.
    """
    if spec.epochs <= 0:
        return []
    generator = torch.Generator().manual_seed(spec.seed)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, nesterov=True
    )
    n = len(inputs)
    steps_per_epoch = max(1, (n + spec.batch_size - 1) // spec.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=spec.lr, total_steps=spec.epochs * steps_per_epoch, pct_start=0.15
    )
    losses: list[float] = []
    model.train()
    for epoch in range(spec.epochs):
        order = torch.randperm(n, generator=generator)
        total, count = 0.0, 0
        for start in range(0, n, spec.batch_size):
            idx = order[start : start + spec.batch_size]
            if len(idx) < 2:
                continue  # batch norm needs more than one sample
            optimiser.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs[idx]), labels[idx])
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
        log.debug("epoch %d/%d: loss %.4f", epoch + 1, spec.epochs, losses[-1])
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    model.eval()
    return losses

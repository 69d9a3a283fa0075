"""Supervised training of a classifier on in-memory tensors (the demo model, and recovery fine-tuning).

Training is seeded (shuffling uses its own generator) and can be checkpointed after every epoch; a run
given the same checkpoint path continues from the last finished epoch and ends with the same weights as
an uninterrupted run (same seed, same thread count).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from edgeprune.io_atomic import write_atomic
from edgeprune.progress import progress_bar
from edgeprune.train.augment import augment_batch, parse_augmentation
from edgeprune.train.distill import LossFn, cross_entropy_loss
from edgeprune.train.schedules import make_scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSpec:
    """Optimiser settings: SGD with Nesterov momentum under a learning-rate schedule (see schedules.py)."""

    epochs: int
    lr: float = 0.01
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    schedule: str = "one-cycle"
    augment: str = "none"  # see augment.py: "none" or a comma-separated subset of "crop", "flip"


EpochCallback = Callable[[int, float], None]
#: called after every optimiser step with the model and the number of steps taken so far (resumed ones included);
#: gradual weight pruning uses it to update and re-apply its masks
StepCallback = Callable[[nn.Module, int], None]


def _load_checkpoint(path: Path | None, spec: TrainSpec, n: int) -> dict | None:
    if path is None or not path.is_file():
        return None
    state = torch.load(path, weights_only=True)
    if state.get("spec") != asdict(spec) or state.get("images") != n:
        log.warning("ignoring fine-tune checkpoint %s: it was made with other settings", path)
        return None
    return state


def train_classifier(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor | None,
    spec: TrainSpec,
    on_epoch: EpochCallback | None = None,
    loss_fn: LossFn | None = None,
    checkpoint: Path | None = None,
    description: str = "training",
    on_step: StepCallback | None = None,
) -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch (resumed epochs included).

    ``loss_fn(logits, inputs, labels)`` defaults to cross-entropy (labels required); distillation passes
    a loss that also reads the teacher's outputs (labels optional), on the same augmented batch. The
    batches are augmented as ``spec.augment`` says (none by default: digits and many edge tasks are not
    flip-invariant). With ``checkpoint``, state is saved after each epoch and a later call with the same
    spec resumes from it. ``on_step(model, steps_done)`` runs after every optimiser step.
    """
    if spec.epochs <= 0:
        return []
    loss_fn = loss_fn or cross_entropy_loss
    augmentation = parse_augmentation(spec.augment)
    n = len(inputs)
    generator = torch.Generator().manual_seed(spec.seed)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, nesterov=True
    )
    steps_per_epoch = max(1, (n + spec.batch_size - 1) // spec.batch_size)
    scheduler = make_scheduler(optimiser, spec.schedule, spec.lr, spec.epochs * steps_per_epoch)
    losses: list[float] = []
    resumed = _load_checkpoint(checkpoint, spec, n)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimiser.load_state_dict(resumed["optimiser"])
        scheduler.load_state_dict(resumed["scheduler"])
        generator.set_state(resumed["generator"])
        losses = [float(v) for v in resumed["losses"]]
        log.info("%s: resuming after epoch %d/%d from %s", description, len(losses), spec.epochs, checkpoint)
    for epoch in range(len(losses), spec.epochs):
        model.train()  # every epoch: an ``on_epoch`` callback may have evaluated the model in eval mode
        order = torch.randperm(n, generator=generator)
        total, count = 0.0, 0
        with progress_bar(f"{description} epoch {epoch + 1}/{spec.epochs}", steps_per_epoch) as advance:
            for start in range(0, n, spec.batch_size):
                idx = order[start : start + spec.batch_size]
                advance(1)
                if len(idx) < 2:
                    continue  # batch norm needs more than one sample
                optimiser.zero_grad(set_to_none=True)
                batch = augment_batch(inputs[idx], augmentation, generator)
                loss = loss_fn(model(batch), batch, None if labels is None else labels[idx])
                loss.backward()
                optimiser.step()
                scheduler.step()
                if on_step is not None:
                    on_step(model, scheduler.last_epoch)
                total += float(loss.detach()) * len(idx)
                count += len(idx)
        losses.append(total / max(count, 1))
        if checkpoint is not None:
            state = {"spec": asdict(spec), "images": n, "model": model.state_dict(),
                     "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                     "generator": generator.get_state(), "losses": losses}
            write_atomic(checkpoint, lambda tmp: torch.save(state, tmp))
        log.debug("epoch %d/%d: loss %.4f", epoch + 1, spec.epochs, losses[-1])
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    model.eval()
    return losses

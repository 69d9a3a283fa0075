"""Supervised training of a classifier (the demo model, and recovery fine-tuning), on one process or several.

Training is seeded (shuffling and augmentation use their own generator) and can be checkpointed after every
epoch; a run given the same checkpoint path continues from the last finished epoch and ends with the same
weights as an uninterrupted run (same seed, same thread count). It runs on ``device`` (``--train-device``;
mixed precision on GPUs, :mod:`edgeprune.train.device`) and, under ``torchrun``, data-parallel: rank 0
broadcasts the job, every rank trains its share of each batch, and the averaged gradient is that of the whole
batch (:mod:`edgeprune.train.distributed`). The model is returned on the CPU, trained in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.io_atomic import write_atomic
from edgeprune.progress import progress_bar
from edgeprune.train import distributed
from edgeprune.train.augment import apply_augmentation, draw_augmentation, parse_augmentation
from edgeprune.train.batches import TensorImages, TrainingImages
from edgeprune.train.device import autocast, grad_scaler
from edgeprune.train.distill import LossFn, cross_entropy_loss
from edgeprune.train.schedules import make_scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSpec:
    """Optimiser settings: SGD with Nesterov momentum under a learning-rate schedule (see schedules.py)."""

    epochs: int
    lr: float = 0.01
    batch_size: int = 64  # the global batch: split over the ranks of a data-parallel run
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    schedule: str = "one-cycle"
    augment: str = "none"  # see augment.py: "none" or a comma-separated subset of "crop", "flip"


EpochCallback = Callable[[int, float], None]
#: called after every optimiser step with the model and the number of steps taken so far (resumed ones included);
#: gradual weight pruning uses it to update and re-apply its masks. Under torchrun it runs on every rank, so it
#: must be picklable
StepCallback = Callable[[nn.Module, int], None]


@dataclass
class TrainingJob:
    """One training run: what rank 0 broadcasts to the other ranks of a data-parallel run."""

    model: nn.Module
    data: TrainingImages
    spec: TrainSpec
    loss_fn: LossFn
    device: torch.device
    resumed: dict[str, Any] | None = None
    on_step: StepCallback | None = None
    description: str = "training"


def _load_checkpoint(path: Path | None, spec: TrainSpec, n: int) -> dict | None:
    if path is None or not path.is_file():
        return None
    state = torch.load(path, weights_only=True, map_location="cpu")
    if state.get("spec") != asdict(spec) or state.get("images") != n:
        log.warning("ignoring fine-tune checkpoint %s: it was made with other settings", path)
        return None
    return state


def _on_device(loss_fn: LossFn, device: torch.device) -> LossFn:
    """``loss_fn`` with its teacher (if any) on ``device``; losses with a teacher have ``to(device)``."""
    if device.type == "cpu" or not hasattr(loss_fn, "to"):
        return loss_fn
    return loss_fn.to(device)  # type: ignore[attr-defined]


def train_classifier(
    model: nn.Module,
    inputs: torch.Tensor | TrainingImages,
    labels: torch.Tensor | None,
    spec: TrainSpec,
    on_epoch: EpochCallback | None = None,
    loss_fn: LossFn | None = None,
    checkpoint: Path | None = None,
    description: str = "training",
    on_step: StepCallback | None = None,
    device: torch.device | None = None,
    data_parallel: bool = True,
) -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch (resumed epochs included).

    ``inputs`` are model inputs (N, C, H, W) with ``labels`` (class indices, masks), or a
    :class:`~edgeprune.train.batches.TrainingImages` that brings its own labels (``labels`` ignored).
    ``loss_fn(logits, inputs, labels)`` defaults to cross-entropy (labels required); distillation passes a loss
    that also reads the teacher's outputs (labels optional), on the same augmented batch. The batches are
    augmented as ``spec.augment`` says (none by default: digits and many edge tasks are not flip-invariant).
    With ``checkpoint``, state is saved after each epoch and a later call with the same spec resumes from it.
    ``on_step(model, steps_done)`` runs after every optimiser step. Under torchrun (a process group of two or
    more), this is rank 0's call: the job goes to every rank (:func:`serve_training_jobs`), unless
    ``data_parallel`` is False (rank 0 then trains alone: the demo model, NNCF's quantization-aware model).
    """
    if spec.epochs <= 0:
        return []
    data = inputs if not isinstance(inputs, torch.Tensor) else TensorImages(inputs, labels)
    resumed = _load_checkpoint(checkpoint, spec, len(data))
    if resumed is not None:
        log.info("%s: resuming after epoch %d/%d from %s", description, len(resumed["losses"]), spec.epochs,
                 checkpoint)
    job = TrainingJob(model, data, spec, loss_fn or cross_entropy_loss, device or torch.device("cpu"), resumed,
                      on_step, description)
    group = distributed.current() if data_parallel else None
    if group is not None:
        distributed.broadcast(job)
    return _train(job, group, model, checkpoint, on_epoch)


def serve_training_jobs() -> int:
    """The loop of a rank other than 0: train every job rank 0 broadcasts, until it sends the end.

    Returns the number of jobs trained."""
    group = distributed.current()
    assert group is not None and not group.leads, "only the other ranks of a data-parallel run serve jobs"
    served = 0
    while (job := distributed.broadcast(None)) is not None:
        _train(job, group, job.model, None, None)
        served += 1
    return served


def _train(job: TrainingJob, group: distributed.ProcessGroup | None, model: nn.Module, checkpoint: Path | None,
           on_epoch: EpochCallback | None) -> list[float]:
    """The loop itself, on this process's share of every batch (all of it without a process group)."""
    spec, device, data = job.spec, job.device, job.data
    ranks = group.world_size if group is not None else 1
    saves = group is None or group.leads
    loss_fn = _on_device(job.loss_fn, device)
    augmentation = parse_augmentation(spec.augment)
    n = len(data)
    generator = torch.Generator().manual_seed(spec.seed)
    model.to(device)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, nesterov=True
    )
    steps_per_epoch = max(1, (n + spec.batch_size - 1) // spec.batch_size)
    scheduler = make_scheduler(optimiser, spec.schedule, spec.lr, spec.epochs * steps_per_epoch)
    scaler = grad_scaler(device)
    losses: list[float] = []
    if job.resumed is not None:
        model.load_state_dict(job.resumed["model"])
        optimiser.load_state_dict(job.resumed["optimiser"])
        scheduler.load_state_dict(job.resumed["scheduler"])
        generator.set_state(job.resumed["generator"])
        if job.resumed.get("scaler"):
            scaler.load_state_dict(job.resumed["scaler"])
        losses = [float(v) for v in job.resumed["losses"]]
    trained: nn.Module = model
    if group is not None:
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                      else None)
    try:
        for epoch in range(len(losses), spec.epochs):
            model.train()  # every epoch: an ``on_epoch`` callback may have evaluated the model in eval mode
            order = torch.randperm(n, generator=generator)
            batches = [order[start : start + spec.batch_size] for start in range(0, n, spec.batch_size)]
            batches = [b for b in batches if len(b) >= 2 * ranks]  # batch norm needs more than one sample per rank
            shares = [group.share(len(b)) if group is not None else slice(0, len(b)) for b in batches]
            total, count = 0.0, 0
            bar_steps = steps_per_epoch if saves else 0  # one bar: rank 0's
            with progress_bar(f"{job.description} epoch {epoch + 1}/{spec.epochs}", bar_steps, "batches") as advance:
                for batch, share, (x, y) in zip(batches, shares,
                                                data.batches([b[s] for b, s in zip(batches, shares)])):
                    advance(1)
                    x = x.to(device, non_blocking=True)
                    if augmentation.active and x.dim() == 4:  # drawn for the whole batch: ranks stay in step
                        draw = draw_augmentation(len(batch), x.shape[-2], x.shape[-1], augmentation, generator)
                        x = apply_augmentation(x, draw.rows_at(share))
                    y = None if y is None else y.to(device, non_blocking=True)
                    optimiser.zero_grad(set_to_none=True)
                    with autocast(device):
                        loss = loss_fn(trained(x), x, y)
                    # the gradient of the whole batch's mean: each rank's mean weighted by its share
                    scaled = loss * (len(x) * ranks / len(batch)) if ranks > 1 else loss
                    scaler.scale(scaled).backward()
                    scaler.step(optimiser)
                    scaler.update()
                    scheduler.step()
                    if job.on_step is not None:
                        job.on_step(model, scheduler.last_epoch)
                    total += float(loss.detach()) * len(x)
                    count += len(x)
                advance(steps_per_epoch - len(batches))
            if group is not None:
                total, count = distributed.sum_over_ranks([total, float(count)], device)
            losses.append(total / max(count, 1))
            if checkpoint is not None and saves:
                _save_checkpoint(checkpoint, job, model, optimiser, scheduler, scaler, generator, losses)
            log.debug("epoch %d/%d: loss %.4f", epoch + 1, spec.epochs, losses[-1])
            if on_epoch is not None:
                on_epoch(epoch + 1, losses[-1])
    finally:
        model.to("cpu")
    model.eval()
    return losses


def _save_checkpoint(path: Path, job: TrainingJob, model: nn.Module, optimiser: torch.optim.Optimizer,
                     scheduler: Any, scaler: torch.amp.GradScaler, generator: torch.Generator,
                     losses: list[float]) -> None:
    state = {"spec": asdict(job.spec), "images": len(job.data), "model": model.state_dict(),
             "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict(), "generator": generator.get_state(), "losses": losses}
    write_atomic(path, lambda tmp: torch.save(state, tmp))

"""Training an Ultralytics YOLO detector on an in-memory :class:`DetectionDataset` with Ultralytics' own loss
(``v8DetectionLoss``: task-aligned assignment, CIoU box loss, distribution focal loss, BCE classes), in a plain
PyTorch loop: no Ultralytics Trainer, so nothing is downloaded and nothing is written to the working folder.

Augmentation is the eight flips and transposes of the square (shapes, like most objects seen from above, have
no upright) and a shuffle of the colour channels. The optimiser is AdamW or SGD with Nesterov momentum, no weight
decay on biases and normalization weights, a linear warm-up and a cosine decay, and an exponential moving
average of the weights (Ultralytics' ``ModelEMA``), which is what the function leaves in the model. Seeded: the
same machine and thread count give the same weights. With a checkpoint path, the whole state (weights, optimiser,
moving average, random generators, step) is saved after every epoch, and a later call with the same settings
continues after the last finished epoch, ending with the weights an uninterrupted run ends with.
"""

from __future__ import annotations

import logging
import math
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.data.detection_dataset import DetectionDataset
from edgeprune.io_atomic import write_atomic
from edgeprune.models.ultralytics_env import configure_ultralytics_offline
from edgeprune.progress import progress_bar
from edgeprune.tasks.detection_predict import images_to_yolo_input
from edgeprune.train.loop import StepCallback

log = logging.getLogger(__name__)

#: ``on_epoch(epoch, mean loss, model)``
EpochCallback = Callable[[int, float, nn.Module], None]
#: ``distill(student's raw head outputs, inputs)``: a distillation loss, mean over the batch
DistillFn = Callable[[Any, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DetectorTrainSpec:
    """Optimiser, schedule, loss gains (Ultralytics' defaults) and augmentation of :func:`train_detector`."""

    epochs: int
    batch_size: int = 16
    optimizer: str = "adamw"  # or "sgd"
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    final_lr_fraction: float = 0.01
    box_gain: float = 7.5
    cls_gain: float = 0.5
    dfl_gain: float = 1.5
    flips: bool = True
    channel_shuffle: bool = True
    ema: bool = True
    seed: int = 0
    #: weight of the distillation loss (per image) against Ultralytics' loss, when both are used
    distill_weight: float = 10.0


def _augment(images: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator,
             spec: DetectorTrainSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random flips/transpose (square images) and channel shuffles, per image; boxes follow."""
    out_images, out_boxes = images.copy(), [b.copy() for b in boxes]
    h, w = images.shape[1:3]
    for i in range(len(images)):
        img, b = out_images[i], out_boxes[i]
        if spec.flips:
            if rng.random() < 0.5:  # left-right
                img, b = img[:, ::-1], np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
            if rng.random() < 0.5:  # up-down
                img, b = img[::-1], np.stack([b[:, 0], h - b[:, 3], b[:, 2], h - b[:, 1]], axis=1)
            if h == w and rng.random() < 0.5:  # transpose
                img, b = img.transpose(1, 0, 2), b[:, [1, 0, 3, 2]]
        if spec.channel_shuffle:
            img = img[..., rng.permutation(3)]
        out_images[i], out_boxes[i] = img, b.astype(np.float32)
    return out_images, out_boxes


def _targets(boxes: list[np.ndarray], classes: list[np.ndarray], size_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A batch's labels as ``v8DetectionLoss`` takes them: image index, class, normalized cx, cy, w, h."""
    h, w = size_hw
    idx = np.concatenate([np.full(len(c), i, np.float32) for i, c in enumerate(classes)])
    cls = np.concatenate(classes).astype(np.float32)
    xyxy = np.concatenate(boxes).reshape(-1, 4)
    xywh = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2 / w, (xyxy[:, 1] + xyxy[:, 3]) / 2 / h,
                     (xyxy[:, 2] - xyxy[:, 0]) / w, (xyxy[:, 3] - xyxy[:, 1]) / h], axis=1).astype(np.float32)
    return {"batch_idx": torch.from_numpy(idx), "cls": torch.from_numpy(cls).view(-1, 1),
            "bboxes": torch.from_numpy(xywh)}


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_norm = isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm))
            (no_decay if name == "bias" or is_norm else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_factor(step: int, total: int, warmup: int, final_fraction: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def _load_checkpoint(path: Path | None, spec: DetectorTrainSpec, images: int, distilled: bool
                     ) -> dict[str, Any] | None:
    """The saved state at ``path`` when it was made with these settings, else None (with a warning)."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, weights_only=True, map_location="cpu")
    if state.get("spec") != asdict(spec) or state.get("images") != images or state.get("distilled") != distilled:
        log.warning("ignoring fine-tune checkpoint %s: it was made with other settings", path)
        return None
    return state


def train_detector(model: nn.Module, dataset: DetectionDataset, spec: DetectorTrainSpec,
                   description: str = "training the detector", on_epoch: EpochCallback | None = None,
                   distill: DistillFn | None = None, checkpoint: Path | None = None,
                   device: torch.device | None = None, on_step: StepCallback | None = None) -> list[float]:
    """Train an Ultralytics ``DetectionModel`` in place on ``dataset`` (labelled, letterboxed to the model's
    input); returns the mean loss (box + cls + dfl, per image) of each epoch, resumed epochs included. The model
    ends in eval mode, holding the moving average of its weights when ``spec.ema``.

    ``on_epoch(epoch, loss, model)`` is called after each epoch with the model as it would be returned then
    (the moving average when ``spec.ema``); it must leave that model's weights as they are. With ``checkpoint``,
    the state is saved there after each epoch and a later call with the same settings resumes from it.
    ``device`` (default CPU): where it trains, in float32; the model is returned on the CPU.
    ``on_step(model, steps_done)`` runs after every optimiser step (gradual weight pruning). Weight masks
    (``torch.nn.utils.prune``'s ``weight_mask`` buffers) are copied to the moving average after each step, not
    averaged: the returned model carries exactly the masks ``on_step`` last set.
    """
    labelled = dataset.boxes is not None and dataset.classes is not None
    if not labelled and distill is None:
        raise ValueError(f"{dataset.source}: training a detector needs labelled data (or a distillation loss)")
    configure_ultralytics_offline()
    from ultralytics.utils.loss import v8DetectionLoss
    from ultralytics.utils.torch_utils import ModelEMA

    device = device or torch.device("cpu")
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    model.to(device)
    if device.type != "cpu" and distill is not None and hasattr(distill, "to"):
        distill = distill.to(device)
    model.args = types.SimpleNamespace(box=spec.box_gain, cls=spec.cls_gain, dfl=spec.dfl_gain)
    criterion = v8DetectionLoss(model)
    groups = _param_groups(model, spec.weight_decay)
    if spec.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=True)
    elif spec.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.momentum, 0.999))
    else:
        raise ValueError(f"unknown optimizer '{spec.optimizer}' (adamw or sgd)")
    ema = ModelEMA(model) if spec.ema else None
    n = len(dataset)
    batches = max(1, n // spec.batch_size)  # full batches only (batch statistics of one image are noise)
    total, warmup = spec.epochs * batches, max(1, round(spec.warmup_epochs * batches))
    epoch_losses: list[float] = []
    step = 0
    resumed = _load_checkpoint(checkpoint, spec, n, distill is not None)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        if ema is not None:
            ema.ema.load_state_dict(resumed["ema"])
            ema.updates = int(resumed["ema_updates"])
        rng.bit_generator.state = resumed["numpy_rng"]
        torch.set_rng_state(resumed["torch_rng"])
        epoch_losses, step = [float(v) for v in resumed["losses"]], int(resumed["step"])
        log.info("%s: resuming after epoch %d/%d from %s", description, len(epoch_losses), spec.epochs, checkpoint)
    model.train()
    with progress_bar(description, total - step, "steps") as advance:
        for epoch in range(len(epoch_losses), spec.epochs):
            order = rng.permutation(n)
            running = 0.0
            for b in range(batches):
                idx = order[b * spec.batch_size:(b + 1) * spec.batch_size] if n >= spec.batch_size else order
                known = [dataset.boxes[i] for i in idx] if dataset.boxes is not None else \
                    [np.zeros((0, 4), np.float32) for _ in idx]
                images, boxes = _augment(dataset.images[idx], known, rng, spec)
                for group in optimizer.param_groups:
                    group["lr"] = spec.lr * _lr_factor(step, total, warmup, spec.final_lr_fraction)
                inputs = images_to_yolo_input(images).to(device)
                predictions = model(inputs)
                loss = torch.zeros((), device=device)
                if labelled:
                    batch = _targets(boxes, [dataset.classes[i] for i in idx], dataset.size_hw)  # type: ignore[index]
                    loss = criterion(predictions, batch)[0].sum()
                if distill is not None:  # Ultralytics' loss is summed over the batch: so is this one
                    loss = loss + spec.distill_weight * len(idx) * distill(predictions, inputs)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                running += float(loss.detach().sum()) / len(idx)
                step += 1
                if on_step is not None:
                    on_step(model, step)
                if ema is not None:
                    copy_weight_masks(model, ema.ema)
                advance(1)
            epoch_losses.append(running / batches)
            log.info("%s: epoch %d/%d, loss %.3f", description, epoch + 1, spec.epochs, epoch_losses[-1])
            if checkpoint is not None:
                state = {
                    "spec": asdict(spec), "images": n, "distilled": distill is not None, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "ema": ema.ema.state_dict() if ema is not None else {},
                    "ema_updates": ema.updates if ema is not None else 0, "numpy_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "losses": epoch_losses, "step": step}
                write_atomic(checkpoint, lambda tmp: torch.save(state, tmp))
            if on_epoch is not None:
                on_epoch(epoch, epoch_losses[-1], ema.ema if ema is not None else model)
                model.train()
    if ema is not None:
        model.load_state_dict(ema.ema.state_dict())
    model.to("cpu")
    model.eval()
    return epoch_losses


def copy_weight_masks(source: nn.Module, target: nn.Module) -> None:
    """Copy ``source``'s weight-pruning masks (``*weight_mask`` buffers) into ``target``'s, which has the same
    structure (a moving average of ``source``); a model without masks is left as it is."""
    for name, mask in source.named_buffers():
        if name.endswith("weight_mask"):
            target.get_buffer(name).copy_(mask)

"""Recovery of a pruned candidate: least-squares reconstruction, batch-norm statistics, fine-tuning.

Order: (1) refit the layers that consume pruned channels so their outputs match the unpruned model's
(He et al. 2017; on for ``lasso``), (2) re-estimate batch-norm statistics (on unless reconstructing: the
refit restores the original pre-BN outputs, so stored statistics stay right), (3) fine-tune with
learning-rate rewinding and optional distillation from the original model. Fine-tuning is checkpointed
after every epoch in the run's resume state.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.config import FitConfig
from edgeprune.data.lazy_folder import LazyImageFolder
from edgeprune.errors import InputError
from edgeprune.fit.calibration_floor import batchnorm_for
from edgeprune.fit.inputs import FitInputs
from edgeprune.fit.resume import RunJournal
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.reconstruct import reconstruct_consumers
from edgeprune.prune.surgery import slim_copy
from edgeprune.train import distributed
from edgeprune.train.augment import parse_augmentation
from edgeprune.train.batches import FolderImages, InMemoryImages, TrainingImages
from edgeprune.train.detector_distill import BOX_TEMPERATURE, YoloDistillationLoss
from edgeprune.train.device import placed_on, resolve_train_device, uses_mixed_precision
from edgeprune.train.distill import DistillationLoss
from edgeprune.train.feature_hints import FEATURE_HINT_WEIGHT, FeatureHintLoss
from edgeprune.train.loop import StepCallback, TrainSpec, train_classifier
from edgeprune.train.segmentation_loss import SegmentationLoss

log = logging.getLogger(__name__)

DISTILL_TEMPERATURE = 4.0
DISTILL_ALPHA = 0.9
#: rebuilt candidates kept for a later :meth:`Recovery.recover` (the guard compares two at a time)
REBUILT_KEPT = 2


class Recovery:
    """Recovers candidates of one run; remembers what it did for the report."""

    def __init__(self, config: FitConfig, inputs: FitInputs, teacher: nn.Module, journal: RunJournal,
                 reconstructs: bool) -> None:
        self.config, self.inputs, self.teacher, self.journal = config, inputs, teacher, journal
        self.reconstructs = reconstructs
        wanted = config.bn_recalibrate
        self.recalibrates_bn = batchnorm_for((not reconstructs) if wanted is None else wanted, len(inputs.calibration))
        self.augment = parse_augmentation(config.finetune_augment).spec  # canonical: checkpoints match
        self.finetune_seconds = 0.0
        self.finetuned_epochs = 0
        self.reconstruction: dict[str, Any] | None = None
        self._underdetermined_warned = False
        #: fine-tunes run so far (recoveries and gradual weight pruning): none means --finetune-epochs was moot
        self.finetunes_run = 0
        self.depth_pruned = False  # set when the reference had blocks removed: it needs recovery even unthinned
        self.distills = config.distill or config.distill_features
        self.hinted_stages: list[str] | None = None
        self.indexed_stages: list[str] | None = None  # hinted stages matched through their kept channels
        self.device = resolve_train_device(config.train_device)
        self._train_images: TrainingImages | None = None
        #: the last candidates rebuilt (the two the uniform-cut guard compared), so that the one recovered is not
        #: rebuilt again: (id of the reference, kept channels) -> (model, its reconstruction summary)
        self._rebuilt: dict[tuple[int, tuple], tuple[nn.Module, nn.Module, dict[str, Any] | None]] = {}

    def recover(self, reference: nn.Module, keep: dict[str, list[int]], groups: list[ChannelGroup],
                name: str) -> nn.Module:
        """A slim copy of ``reference`` keeping ``keep``, recovered; ``name`` labels its checkpoint."""
        if not keep:
            return self._finetune(copy.deepcopy(reference), name, {}, groups) if self.depth_pruned else reference
        rebuilt = self._rebuilt.pop((id(reference), _frozen(keep)), None)
        if rebuilt is not None and rebuilt[0] is reference:  # rebuilt for the guard's comparison: deterministic
            _, slim, self.reconstruction = rebuilt
            log.debug("recovering the candidate rebuilt for the uniform-cut comparison")
        else:
            slim = self.rebuild(reference, keep, groups)
        return self._finetune(slim, name, keep, groups)

    def rebuild(self, reference: nn.Module, keep: dict[str, list[int]], groups: list[ChannelGroup]) -> nn.Module:
        """A slim copy of ``reference`` keeping ``keep`` with the recovery's steps that come before fine-tuning:
        least-squares reconstruction where the run reconstructs, batch-norm re-estimation where it re-estimates.

        Deterministic for a given seed, so the uniform-cut guard (:mod:`edgeprune.fit.loop.guard`) compares two
        candidates as the recovery will leave them, and the one recovered later is the one compared."""
        example = self.inputs.example
        slim = slim_copy(reference, example, keep, self.config.frozen_modules)
        if self.reconstructs:
            errors = reconstruct_consumers(reference, slim, example, self.inputs.calibration, keep, groups,
                                           seed=self.config.seed)
            underdetermined = [e for e in errors.values() if e.samples < e.unknowns]
            if underdetermined and not self._underdetermined_warned:
                self._underdetermined_warned = True
                per_image = max(1, underdetermined[0].samples // max(1, len(self.inputs.calibration)))
                needed = -(-max(e.unknowns for e in underdetermined) // per_image)
                log.warning("least-squares reconstruction skipped %d of %d layers: they have more weights to fit "
                            "than the %d calibration images give sampled positions (%s); pass --calib-data DIR "
                            "with about %d images to refit them all", len(underdetermined), len(errors),
                            len(self.inputs.calibration), self.inputs.calibration_source, needed)
            if errors:
                before = float(np.mean([e.error_before for e in errors.values()]))
                after = float(np.mean([e.error_after for e in errors.values()]))
                log.info("least-squares reconstruction of %d layers: relative output error %.3f → %.3f",
                         len(errors), before, after)
                self.reconstruction = {"layers": len(errors), "mean_error_before": before,
                                       "mean_error_after": after,
                                       "skipped_underdetermined": len(underdetermined)}
        if self.recalibrates_bn:
            with placed_on(slim, self.device):
                recalibrate_batchnorm(slim, self.inputs.calibration)
        self._rebuilt[(id(reference), _frozen(keep))] = (reference, slim, self.reconstruction)
        while len(self._rebuilt) > REBUILT_KEPT:
            del self._rebuilt[next(iter(self._rebuilt))]
        return slim

    def train_spec(self) -> TrainSpec:
        """The fine-tune's optimiser settings."""
        return TrainSpec(epochs=self.config.finetune_epochs, lr=self.config.finetune_lr, seed=self.config.seed,
                         schedule=self.config.finetune_schedule,
                         augment=self.augment)

    def finetune_enabled(self) -> bool:
        """Whether fine-tuning will run (epochs > 0 and usable training data)."""
        if self.inputs.task_train_set is not None:  # a detector's or a segmenter's own training set
            return self.config.finetune_epochs > 0 and (self._task_labels() is not None or self.distills)
        train = self.inputs.train_set
        if self.config.finetune_epochs == 0 or train is None:
            return False
        return train.labels is not None or self.distills

    def finetune_with_steps(self, model: nn.Module, name: str, keep: dict[str, list[int]],
                            groups: list[ChannelGroup], on_step: StepCallback) -> nn.Module:
        """The recovery fine-tune of ``model`` with ``on_step`` called after every optimiser step (gradual weight
        pruning, :mod:`edgeprune.fit.sparsity_stage`); checkpointed as ``name``."""
        return self._finetune(model, name, keep, groups, on_step)

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one fine-tune epoch (a detector's loop takes full batches only)."""
        if self.inputs.task.name == "detection" and self.inputs.task_train_set is not None:
            return max(1, len(self.inputs.task_train_set) // self._detector_spec().batch_size)
        data = self.inputs.task_train_set if self.inputs.task_train_set is not None else self.inputs.train_set
        batch = self.train_spec().batch_size
        return max(1, (len(data) + batch - 1) // batch) if data is not None else 0

    def _finetune(self, model: nn.Module, name: str, keep: dict[str, list[int]],
                  groups: list[ChannelGroup], on_step: StepCallback | None = None) -> nn.Module:
        if not self.finetune_enabled():
            return model
        self.finetunes_run += 1
        if self.inputs.task.name == "detection":
            return self._finetune_detector(model, name, on_step)
        if self.inputs.task.name == "segmentation":
            return self._finetune_segmenter(model, name, on_step)
        loss: DistillationLoss | FeatureHintLoss | None = None
        if self.config.distill_features:
            loss = FeatureHintLoss(model, self.teacher, self.inputs.example, DISTILL_TEMPERATURE, DISTILL_ALPHA,
                                   keep=keep, groups=groups)
            self.hinted_stages, self.indexed_stages = loss.stages, loss.indexed_stages
        elif self.distills:
            loss = DistillationLoss(self.teacher, DISTILL_TEMPERATURE, DISTILL_ALPHA)
        epochs = self.config.finetune_epochs
        start = time.perf_counter()
        try:
            train_classifier(model, self.training_images(), None, self.train_spec(), loss_fn=loss, device=self.device,
                             checkpoint=self.journal.checkpoint_path(f"finetune-{name}"), description="fine-tune",
                             on_epoch=lambda e, value: log.info("fine-tune epoch %d/%d: loss %.4f", e, epochs, value),
                             on_step=on_step)
        finally:
            if isinstance(loss, FeatureHintLoss):
                loss.close()
        self.finetune_seconds += time.perf_counter() - start
        self.finetuned_epochs += epochs
        return model.eval()

    def training_images(self) -> TrainingImages:
        """A classifier's training set as the training loop batches it (in memory, or read per batch)."""
        if self._train_images is None:
            train = self.inputs.train_set
            assert train is not None
            if isinstance(train, LazyImageFolder):
                self._train_images = FolderImages(train, self.inputs.preprocessing, self.config.data_workers)
            else:
                labels = None if train.labels is None else torch.from_numpy(train.labels)
                self._train_images = InMemoryImages(train.images, labels, self.inputs.preprocessing)
        return self._train_images

    def _task_labels(self) -> Any:
        """The labels of the task's own training set: a detector's boxes, a segmenter's masks (None without)."""
        data = self.inputs.task_train_set
        return getattr(data, "boxes", None) if self.inputs.task.name == "detection" else getattr(data, "masks", None)

    def _finetune_segmenter(self, model: nn.Module, name: str, on_step: StepCallback | None = None) -> nn.Module:
        """A segmentation model's fine-tune: the classifiers' loop (schedule, rewinding, checkpoints for
        ``--resume``) with per-pixel cross-entropy on the masks and, with ``--distill`` or without masks,
        per-pixel distillation from the original."""
        data = self.inputs.task_train_set
        if self._train_images is None:
            masks = None if data.masks is None else torch.from_numpy(data.masks.astype(np.int64))
            self._train_images = InMemoryImages(data.images, masks, self.inputs.preprocessing)
        loss = SegmentationLoss(self.teacher if self.distills or data.masks is None else None, DISTILL_TEMPERATURE,
                                DISTILL_ALPHA)
        epochs = self.config.finetune_epochs
        start = time.perf_counter()
        train_classifier(model, self._train_images, None, dataclasses.replace(self.train_spec(), augment="none"),
                         loss_fn=loss, device=self.device, checkpoint=self.journal.checkpoint_path(f"finetune-{name}"),
                         description="fine-tune", on_step=on_step,
                         on_epoch=lambda e, value: log.info("fine-tune epoch %d/%d: loss %.4f", e, epochs, value))
        self.finetune_seconds += time.perf_counter() - start
        self.finetuned_epochs += epochs
        return model.eval()

    def _detector_spec(self) -> Any:
        """The detector fine-tune's settings (:class:`~edgeprune.train.detector_loop.DetectorTrainSpec`)."""
        from edgeprune.train.detector_loop import DetectorTrainSpec

        epochs = self.config.finetune_epochs
        return DetectorTrainSpec(epochs=epochs, optimizer="sgd", lr=self.config.finetune_lr, momentum=0.937,
                                 warmup_epochs=min(1.0, epochs / 4), flips=False, channel_shuffle=False,
                                 seed=self.config.seed)

    def _finetune_detector(self, model: nn.Module, name: str, on_step: StepCallback | None = None) -> nn.Module:
        """A YOLO detector's fine-tune: Ultralytics' loss on the boxes, plus (``--distill``, or without boxes
        alone) distillation from the original's raw head outputs; SGD at ``--finetune-lr`` with a short warm-up
        and a cosine decay, weights averaged (EMA) as Ultralytics trains; checkpointed after every epoch for
        ``--resume``."""
        from edgeprune.train.detector_loop import train_detector

        data = self.inputs.task_train_set
        epochs = self.config.finetune_epochs
        spec = self._detector_spec()
        distill = YoloDistillationLoss(self.teacher) if self.distills or data.boxes is None else None
        start = time.perf_counter()
        if distributed.current() is not None:
            raise InputError("data-parallel fine-tuning (torchrun, --train-nproc) is not available for detectors "
                             "yet: fine-tune on one process (--train-device cuda takes a GPU)")
        train_detector(model, data, spec, description="fine-tune", distill=distill, device=self.device,
                       checkpoint=self.journal.checkpoint_path(f"finetune-{name}"), on_step=on_step)
        self.finetune_seconds += time.perf_counter() - start
        self.finetuned_epochs += epochs
        return model.eval()

    def summary(self) -> dict[str, Any]:
        """The fine-tune facts for the report: what :meth:`_recipe` says, and where it trained."""
        group = distributed.current()
        return {**self._recipe(), "device": str(self.device), "mixed_precision": uses_mixed_precision(self.device),
                "processes": 1 if group is None else group.world_size}

    def _recipe(self) -> dict[str, Any]:
        if self.inputs.task.name == "segmentation" and self.inputs.task_train_set is not None:
            data = self.inputs.task_train_set
            distilled = self.distills or data.masks is None
            return {"epochs": self.finetuned_epochs, "images": len(data), "seconds": self.finetune_seconds,
                    "schedule": self.config.finetune_schedule, "lr": self.config.finetune_lr, "augment": "none",
                    "loss": ("per-pixel cross-entropy" if data.masks is not None else "")
                    + (" + " if distilled and data.masks is not None else "")
                    + ("per-pixel distillation from the original" if distilled else ""),
                    "distill": distilled, "distill_temperature": DISTILL_TEMPERATURE if distilled else None,
                    "distill_alpha": DISTILL_ALPHA if distilled and data.masks is not None else None,
                    "feature_hints": None}
        if self.inputs.task_train_set is not None:  # a detector
            data = self.inputs.task_train_set
            distilled = self.distills or data.boxes is None
            return {"epochs": self.finetuned_epochs, "images": len(data), "seconds": self.finetune_seconds,
                    "schedule": "warm-up, cosine (SGD, EMA of weights)", "lr": self.config.finetune_lr,
                    "augment": "none", "loss": ("Ultralytics v8DetectionLoss" if data.boxes is not None else "")
                    + (" + " if distilled and data.boxes is not None else "")
                    + ("distillation on the Detect head's raw outputs" if distilled else ""),
                    "distill": distilled, "distill_temperature": BOX_TEMPERATURE if distilled else None,
                    "distill_alpha": None, "feature_hints": None}
        train = self.inputs.train_set
        return {"epochs": self.finetuned_epochs, "images": 0 if train is None else len(train),
                "seconds": self.finetune_seconds, "schedule": self.config.finetune_schedule,
                "lr": self.config.finetune_lr, "augment": self.augment,
                "distill": self.distills,
                "distill_temperature": DISTILL_TEMPERATURE if self.distills else None,
                "distill_alpha": DISTILL_ALPHA if self.distills else None,
                "feature_hints": None if not self.config.distill_features else
                {"weight": FEATURE_HINT_WEIGHT, "stages": self.hinted_stages,
                 "matched_by_kept_channels": self.indexed_stages}}


def _frozen(keep: dict[str, list[int]]) -> tuple:
    """A hashable form of kept channels."""
    return tuple(sorted((name, tuple(indices)) for name, indices in keep.items()))

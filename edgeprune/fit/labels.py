"""Do the evaluation labels number the model's classes? The original's top-1 judged against chance, twice.

Early, before any measurement (:func:`check_labels_early`): the original in PyTorch on the first
:data:`EARLY_IMAGES` evaluation images, a second's work that can save a run whose accuracy would mean nothing.
At the end (:func:`final_label_check`): the original's artifact on every evaluation image in the runtime, the
figure the summary prints; it is report.json's ``label_check``. Both warn in one line saying what to check
(:mod:`edgeprune.data.label_check` holds the rule).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.data.label_check import MIN_IMAGES, label_check
from edgeprune.fit.inputs import FitInputs
from edgeprune.tasks.classification import ClassificationTask

log = logging.getLogger(__name__)

#: evaluation images the early check runs the original on (enough for the rule: at least MIN_IMAGES)
EARLY_IMAGES = 32


def check_labels_early(model: nn.Module, inputs: FitInputs) -> dict[str, Any] | None:
    """The original's top-1 in PyTorch on the first :data:`EARLY_IMAGES` labelled evaluation images, judged by
    :func:`~edgeprune.data.label_check.label_check`; a WARNING when it is at chance. None when not judged (not a
    classifier, no labels, too few images)."""
    labels = inputs.truth
    if not isinstance(inputs.task, ClassificationTask) or labels is None or inputs.bundle.num_classes is None:
        return None
    count = min(EARLY_IMAGES, len(inputs.eval_inputs))
    if count < MIN_IMAGES:
        return None
    was_training = model.training
    model.eval()
    with torch.no_grad():
        outputs = model(inputs.eval_inputs[:count])
    model.train(was_training)
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
        return None
    top1 = float(np.mean(outputs.argmax(dim=1).numpy() == np.asarray(labels[:count])))
    check = label_check(top1, count, inputs.bundle.num_classes, inputs.eval_set.labels_from)
    if check is not None and check["suspect"]:
        log.warning("%s (PyTorch, the first %d evaluation images, before pruning; the fit goes on, Ctrl-C to stop "
                    "it and fix the labels)", check["message"], count)
    return check


def final_label_check(inputs: FitInputs, top1: float | None, images: int) -> dict[str, Any] | None:
    """report.json's ``label_check``: the original's top-1 in the runtime on the ``images`` evaluation images,
    judged by :func:`~edgeprune.data.label_check.label_check`; a WARNING when it is at chance. None for other
    tasks and unlabelled data."""
    if not isinstance(inputs.task, ClassificationTask) or inputs.truth is None:
        return None
    check = label_check(top1, images, inputs.bundle.num_classes, inputs.eval_set.labels_from)
    if check is not None and check["suspect"]:
        log.warning("%s", check["message"])
    return check

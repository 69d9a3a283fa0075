"""Classification: the prediction is the arg-max class; the metric is top-1 accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeprune.tasks.base import Task, TaskScore


class ClassificationTask(Task):
    """Class logits (or probabilities) per image.

    >>> ClassificationTask().score([1, 2, 2], np.array([1, 2, 0])).headline
    0.6666666666666666
    """

    name = "classification"
    metric_name = "top-1"
    metric_key = "top1"
    metric_keys = ("top1",)
    agreement_name = "top-1 agreement"
    agreement_phrase = "of the original's answers kept"
    min_int8_agreement = 0.97  # edgeprune.quantize.choice.MIN_INT8_AGREEMENT
    # a pruned classifier that changes the original's answer on more than 1 image in 5 has lost far more than a
    # fit should cost (the collapsed mobilenet_v2 of issue 35: 0.0; healthy fits keep 0.9 and more)
    min_agreement = 0.8

    def decode(self, output: np.ndarray) -> int:
        return int(np.argmax(np.asarray(output).reshape(-1)))

    def score(self, predictions: Sequence[Any], truth: Any) -> TaskScore:
        top1 = float(np.mean(np.asarray(predictions) == np.asarray(truth)))
        return TaskScore(top1, {"top1": top1})

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        return float(np.mean(np.asarray(predictions) == np.asarray(reference)))

"""Accuracy and output parity of an exported artifact, computed in its own runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.progress import progress_bar
from edgeprune.quantize.mixed import QuantizationError
from edgeprune.runtimes.base import Session
from edgeprune.tasks.base import Task, TaskScore
from edgeprune.tasks.classification import ClassificationTask


@dataclass(frozen=True)
class ArtifactEvaluation:
    """Predictions of an artifact over a dataset (one per image, as its task decodes them), and the task's
    score when labels exist."""

    predictions: Any
    score: TaskScore | None
    images: int

    @property
    def top1(self) -> float | None:
        """Top-1 accuracy (classifiers with labels), else None."""
        return None if self.score is None else self.score.metrics.get("top1")

    @property
    def headline(self) -> float | None:
        """The task's headline metric (top-1, mAP50-95) when labels exist, else None."""
        return None if self.score is None else self.score.headline


def evaluate_session(session: Session, input_name: str, inputs: torch.Tensor, labels: Any,
                     task: Task | None = None) -> ArtifactEvaluation:
    """Run the artifact on each input (batch size 1, as exported), decode each output as ``task`` does
    (classification by default) and score the predictions against ``labels`` (the task's truth) when given."""
    task = task or ClassificationTask()
    array = inputs.numpy()
    decoded: list[Any] = []
    with progress_bar("evaluating", len(array), "images") as advance:
        for i in range(len(array)):
            decoded.append(task.decode(session.run({input_name: array[i : i + 1]})[0]))
            advance(1)
    predictions: Any = np.asarray(decoded, dtype=np.int64) if isinstance(task, ClassificationTask) else decoded
    score = None if labels is None else task.score(predictions, labels)
    return ArtifactEvaluation(predictions, score, len(array))


def max_abs_difference(session: Session, input_name: str, model: nn.Module, inputs: torch.Tensor) -> float:
    """Largest absolute difference between the artifact's and PyTorch's outputs over ``inputs``."""
    worst = 0.0
    model.eval()
    with torch.no_grad(), progress_bar("comparing the artifact with PyTorch", len(inputs), "images") as advance:
        for i in range(len(inputs)):
            x = inputs[i : i + 1]
            reference = model(x).numpy()
            produced = session.run({input_name: x.numpy()})[0]
            worst = max(worst, float(np.abs(reference - produced).max()))
            advance(1)
    return worst


def top1_agreement(session: Session, input_name: str, model: nn.Module, inputs: torch.Tensor) -> float:
    """Share of ``inputs`` on which the artifact run by ``session`` predicts the class ``model`` predicts."""
    return agreement_with_model(session, input_name, model, inputs, ClassificationTask())


def agreement_with_model(session: Session, input_name: str, model: nn.Module, inputs: torch.Tensor,
                         task: Task) -> float:
    """How far the artifact run by ``session`` reproduces ``model``'s predictions on ``inputs``, as ``task``
    measures it (top-1 agreement for classifiers, mAP against the model's boxes for detectors)."""
    model.eval()
    reference = []
    with torch.no_grad(), progress_bar("the original's answers in PyTorch", len(inputs), "images") as advance:
        for i in range(len(inputs)):
            reference.append(task.decode(model(inputs[i:i + 1]).numpy()))
            advance(1)
    produced = evaluate_session(session, input_name, inputs, None, task).predictions
    return task.agreement(produced, reference)


def model_logits(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """``model``'s outputs for ``inputs`` (flattened per image), in batches of 128, eval mode, no gradients."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(inputs[i:i + 128]).reshape(len(inputs[i:i + 128]), -1)
                          for i in range(0, len(inputs), 128)]).numpy()


def quantization_error(session: Session, input_name: str, reference: np.ndarray, inputs: torch.Tensor
                       ) -> QuantizationError:
    """How far the artifact run by ``session`` is from the float outputs ``reference`` (see :func:`model_logits`)
    on ``inputs``: top-1 agreement and the mean KL(float || artifact) of the softmax outputs, in nats."""
    array = inputs.numpy()
    rows = []
    with progress_bar("the quantized model's error", len(array), "images") as advance:
        for i in range(len(array)):
            rows.append(np.asarray(session.run({input_name: array[i:i + 1]})[0], dtype=np.float64).reshape(-1))
            advance(1)
    outputs = np.stack(rows)
    expected = torch.log_softmax(torch.from_numpy(reference.astype(np.float64)), 1)
    actual = torch.log_softmax(torch.from_numpy(outputs), 1)
    kl = float((expected.exp() * (expected - actual)).sum(1).mean())
    agreement = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    return QuantizationError(agreement, max(kl, 0.0), len(array))

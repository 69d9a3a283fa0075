"""Accuracy and output parity of an exported artifact, computed in its own runtime."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeprune.backends.base import Session
from edgeprune.progress import progress_bar
from edgeprune.quantize.mixed import QuantizationError


@dataclass(frozen=True)
class ArtifactEvaluation:
    """Predictions of an artifact over a dataset, and accuracy when labels exist."""

    predictions: np.ndarray
    top1: float | None
    images: int


def evaluate_session(session: Session, input_name: str, inputs: torch.Tensor, labels: np.ndarray | None) -> ArtifactEvaluation:
    """Run the artifact on each input (batch size 1, as exported) and score top-1 against ``labels``."""
    predictions = np.empty(len(inputs), dtype=np.int64)
    array = inputs.numpy()
    with progress_bar("evaluating", len(array)) as advance:
        for i in range(len(array)):
            logits = session.run({input_name: array[i : i + 1]})[0]
            predictions[i] = int(np.argmax(logits.reshape(-1)))
            advance(1)
    top1 = None if labels is None else float((predictions == labels).mean())
    return ArtifactEvaluation(predictions, top1, len(array))


def max_abs_difference(session: Session, input_name: str, model: nn.Module, inputs: torch.Tensor) -> float:
    """Largest absolute difference between the artifact's and PyTorch's outputs over ``inputs``."""
    worst = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(len(inputs)):
            x = inputs[i : i + 1]
            reference = model(x).numpy()
            produced = session.run({input_name: x.numpy()})[0]
            worst = max(worst, float(np.abs(reference - produced).max()))
    return worst


def top1_agreement(session: Session, input_name: str, model: nn.Module, inputs: torch.Tensor) -> float:
    """Share of ``inputs`` on which the artifact run by ``session`` predicts the class ``model`` predicts."""
    expected = model_logits(model, inputs).argmax(1)
    return float(np.mean(evaluate_session(session, input_name, inputs, None).predictions == expected))


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
    outputs = np.stack([np.asarray(session.run({input_name: array[i:i + 1]})[0], dtype=np.float64).reshape(-1)
                        for i in range(len(array))])
    expected = torch.log_softmax(torch.from_numpy(reference.astype(np.float64)), 1)
    actual = torch.log_softmax(torch.from_numpy(outputs), 1)
    kl = float((expected.exp() * (expected - actual)).sum(1).mean())
    agreement = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    return QuantizationError(agreement, max(kl, 0.0), len(array))

"""The first check of a fit: does the user's *original* model run in the target's runtime as it does in PyTorch?

Run before any scoring, profiling or search, so that a model the runtime cannot execute faithfully (an op it
lacks, an export that changes the function) is refused in seconds with one line, rather than after minutes of
work or as a validation failure at the end.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from edgeprune.errors import ModelLoadError, first_line
from edgeprune.export.formats import effective_precision, runnable_here
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.target import Target
from edgeprune.validate.tolerances import tolerance_for

log = logging.getLogger(__name__)

#: images the original is compared on (batch size 1 each, as exported)
CHECK_IMAGES = 4


def check_original_runs(backend: Backend, target: Target, artifact: Artifact, model: nn.Module,
                        inputs: torch.Tensor) -> float:
    """Run the original's ``artifact`` on the first :data:`CHECK_IMAGES` of ``inputs`` in the target's runtime
    and compare with PyTorch; returns the relative difference (``max|diff| / max(1, max|reference|)``).

    Raises :class:`~edgeprune.errors.ModelLoadError` (one line: the runtime, what failed) when the runtime
    cannot load or run the artifact, or when its outputs differ from PyTorch's beyond the precision's tolerance.
    """
    here, _ = runnable_here(target)
    x = inputs[:CHECK_IMAGES]
    try:
        session = backend.load(artifact, here)
        produced = [np.asarray(session.run({artifact.input_name: x[i:i + 1].numpy()})[0]) for i in range(len(x))]
    except Exception as exc:  # a runtime's own error: name it, in one line
        raise ModelLoadError(f"the original model does not run in {backend.name} ({type(exc).__name__}: "
                             f"{first_line(exc, 300)}): edgeprune can only prune a model its target runtime executes") from None
    was_training = model.training
    model.eval()
    with torch.no_grad():
        reference = [model(x[i:i + 1]) for i in range(len(x))]
    model.train(was_training)
    if not all(isinstance(r, torch.Tensor) for r in reference):
        return float("nan")  # a model with several outputs: compared by the validation at the end
    expected = [r.numpy() for r in reference]
    if any(p.shape != e.shape for p, e in zip(produced, expected)):
        raise ModelLoadError(f"the original model's output in {backend.name} has shape {list(produced[0].shape)}, "
                             f"PyTorch's {list(expected[0].shape)}: its export does not compute the same function")
    difference = max(float(np.abs(p - e).max()) / max(1.0, float(np.abs(e).max())) for p, e in zip(produced, expected))
    precision = effective_precision(here)
    limit = tolerance_for(precision).max_abs_diff_relative
    if not difference <= limit:
        raise ModelLoadError(
            f"the original model's outputs in {backend.name} differ from PyTorch's by {difference:.2e} (relative; "
            f"{precision} allows {limit:g}): its export does not compute the same function, so nothing measured "
            "on it would hold; check the model's custom ops, or try another --target runtime")
    log.info("the original model runs in %s like in PyTorch (relative difference %.1e on %d images)", backend.name,
             difference, len(x))
    return difference

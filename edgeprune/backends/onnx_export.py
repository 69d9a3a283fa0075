"""PyTorch → ONNX export (one self-contained file), with the exporter's chatter kept out of the terminal."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from edgeprune.errors import InputError

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Export ``model`` (in eval mode) at the example's fixed shape to ``path`` and check the result.

    Uses the dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``), the one PyTorch maintains;
    weights are embedded so the file stands alone.
    """
    was_training = model.training
    model.eval()
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                external_data=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; the user needs one line
        log.debug("ONNX exporter output:\n%s", captured.getvalue())
        raise InputError(f"ONNX export failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    finally:
        model.train(was_training)
    log.debug("ONNX exporter output:\n%s", captured.getvalue())
    onnx.checker.check_model(str(path))
    return path

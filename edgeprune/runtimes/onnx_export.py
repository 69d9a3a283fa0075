"""PyTorch → ONNX export (one self-contained file), with the exporter's chatter kept out of the terminal."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

_NOISY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo", "torch.fx")
INPUT_NAME = "input"
#: the ONNX artifact format's name: ONNX is also the interchange format several runtimes read
ONNX_FORMAT = "onnx"
OUTPUT_NAME = "logits"


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """Raise the exporter's loggers to ERROR for the duration (they log every optimisation pass at INFO)."""
    previous = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Export ``model`` (in eval mode) at the example's fixed shape to ``path`` and check the result.

    Uses the dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``), the one PyTorch maintains;
    weights are embedded so the file stands alone.
    """
    import onnx
    import torch

    was_training = model.training
    model.eval()
    captured = io.StringIO()
    try:
        with _quiet_loggers(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), \
                warnings.catch_warnings():
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


def is_onnx(fmt: str) -> bool:
    """Whether an artifact of format ``fmt`` is an ONNX file (whose nodes keep PyTorch module paths)."""
    return fmt == ONNX_FORMAT

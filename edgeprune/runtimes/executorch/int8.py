"""INT8 ``.pte`` programs by ExecuTorch's own quantizer: PT2E with ``XNNPACKQuantizer``, lowered to XNNPACK.

The model is captured with ``torch.export``, annotated by ``XNNPACKQuantizer`` with
``get_symmetric_quantization_config(is_per_channel=True)`` (int8 weights, symmetric, one scale per output
channel; int8 activations, affine, min/max observers), calibrated on the given images at the example's batch
size (the captured graph is specialised to it), converted (``convert_pt2e``), exported again and lowered with
the XNNPACK partitioner, which fuses each dequantize → op → quantize pattern into an XNNPACK int8 operator.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError, first_line
from edgeprune.progress import heartbeat
from edgeprune.runtimes.base import Artifact
from edgeprune.runtimes.native_output import quiet_native_output
from edgeprune.target import Target

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

TOOL = "torchao PT2E (prepare_pt2e/convert_pt2e) with executorch XNNPACKQuantizer"


def _quantizer() -> tuple[Any, Any, Any]:
    """``(prepare_pt2e, convert_pt2e, quantizer)`` or :class:`MissingRuntimeError`."""
    try:
        with quiet_native_output():
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        raise MissingRuntimeError("ExecuTorch", "executorch") from None
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    return prepare_pt2e, convert_pt2e, quantizer


def export_int8(model: nn.Module, example: torch.Tensor, out_path: Path, target: Target,
                calibration: np.ndarray) -> Artifact:
    """Quantize ``model`` to INT8 calibrated on ``calibration`` (float32 NCHW inputs) and write
    ``out_path.with_suffix('.pte')``."""
    import torch

    from edgeprune.runtimes.executorch.lowering import INPUT_NAME, export_program, lower_to_pte

    images = np.asarray(calibration, dtype=np.float32)
    if images.ndim != example.dim() or images.shape[1:] != tuple(example.shape[1:]) or len(images) == 0:
        raise InputError(f"calibration images of shape {images.shape[1:]} do not fit the model input "
                         f"{tuple(example.shape[1:])}")
    prepare_pt2e, convert_pt2e, quantizer = _quantizer()
    batch = int(example.shape[0])
    was_training = model.training
    model.eval()
    try:
        captured = export_program(model, example).module()
        with quiet_native_output(), heartbeat("calibrating the ExecuTorch INT8 model"):
            prepared = prepare_pt2e(captured, quantizer)
            with torch.no_grad():
                for start in range(0, len(images) - batch + 1, batch):
                    prepared(torch.from_numpy(images[start:start + batch]))
            converted = convert_pt2e(prepared)
    except InputError:
        raise
    except Exception as exc:  # the quantizer raises many types; the user needs one line
        raise InputError(f"ExecuTorch INT8 quantization failed: {first_line(exc, 300)}") from None
    finally:
        model.train(was_training)
    path = Path(out_path).with_suffix(".pte")
    lower_to_pte(export_program(converted, example, set_eval=False), path)
    return Artifact(path, "pte", INPUT_NAME, tuple(int(v) for v in example.shape))


def is_quantized(path: Path) -> bool:
    """Whether any compute layer of the ``.pte`` at ``path`` runs with int8 weights."""
    from edgeprune.runtimes.executorch.layers import layer_precisions

    return any(layer.weights == "int8" for layer in layer_precisions(path))


def describe_int8(calibration_images: int) -> dict[str, Any]:
    """How the INT8 programs are quantized, for the report."""
    return {"precision": "int8", "tool": TOOL,
            "format": "ExecuTorch .pte, quantized operators in the XNNPACK delegate",
            "weights": "int8, symmetric, one scale per output channel",
            "activations": "int8, affine, min/max calibration",
            "calibration_images": int(calibration_images)}

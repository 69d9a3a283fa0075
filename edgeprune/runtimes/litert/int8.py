"""INT8 TFLite models by LiteRT's own quantizer (``ai-edge-quantizer``, recipe ``static_wi8_ai8``).

The float ``.tflite`` that litert-torch converted is calibrated on the calibration images and rewritten with
int8 weights (one scale per output channel) and int8 activations: a fully integer model, input and output
tensors included, the form XNNPACK and microcontroller runtimes run as integer kernels. edgeprune's LiteRT
session quantizes float inputs with the input's scale and dequantizes the outputs, so such a model is used
like a float one.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np

from edgeprune.errors import InputError, first_line
from edgeprune.progress import heartbeat

log = logging.getLogger(__name__)


def tflite_is_quantized(path: Path) -> bool:
    """Whether the TFLite model at ``path`` computes in integers (int8/uint8 weight or activation tensors);
    False for a file the interpreter cannot read (loading it is where that gets reported)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        return any(np.dtype(t["dtype"]) in (np.int8, np.uint8) for t in interpreter.get_tensor_details())
    except Exception:  # noqa: BLE001 - not a readable model, so not a quantized one
        return False


def quantize_tflite_int8(source: Path, dest: Path, images: np.ndarray) -> None:
    """Write the fully integer INT8 form of the float TFLite model ``source`` to ``dest``, calibrated on
    ``images`` (model inputs as the model takes them, already normalised)."""
    if len(images) == 0:
        raise InputError("INT8 quantization needs calibration images (--calib-images, from --data)")
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer, recipe

        signatures = Interpreter(model_path=str(source)).get_signature_list()
        signature = next(iter(signatures))
        input_name = signatures[signature]["inputs"][0]
        batches = [{input_name: np.ascontiguousarray(images[i:i + 1], dtype=np.float32)} for i in range(len(images))]
        # its progress bars hidden (a log file keeps the heartbeat's lines; a piped stderr loses them meanwhile)
        with heartbeat(f"quantizing to INT8 with ai-edge-quantizer on {len(batches)} images"), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            tool = quantizer.Quantizer(str(source), recipe.static_wi8_ai8())
            result = tool.quantize(tool.calibrate({signature: batches}))
        result.export_model(str(dest))
    except Exception as exc:  # the quantizer raises many types on a graph it cannot handle
        raise InputError(f"LiteRT's quantizer cannot quantize {Path(source).name}: {type(exc).__name__}: "
                         f"{first_line(exc, 200)}") from None
    log.debug("quantized %s to INT8 with ai-edge-quantizer on %d calibration images", Path(source).name, len(images))

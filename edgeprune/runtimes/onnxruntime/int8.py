"""INT8 ONNX models by ONNX Runtime's own static quantizer.

The float model is first put through ``quant_pre_process`` (shape inference and graph optimisation, as
ONNX Runtime's quantization guide asks), then ``quantize_static`` writes a QDQ model: int8 weights with one
scale per output channel, uint8 activations calibrated (min/max) on the calibration images, the pairing that
x86 CPUs with VNNI and Arm CPUs with dot-product instructions run as integer kernels. The model's input and
output stay float, so the artifact is a drop-in replacement for the float one.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np

from edgeprune.errors import InputError, first_line
from edgeprune.progress import heartbeat
from edgeprune.runtimes.onnx_labels import compute_layers, module_nodes
from edgeprune.runtimes.onnxruntime.quantizer_log import quantizer_notes_to_debug

log = logging.getLogger(__name__)

#: op types that only quantized ONNX models contain
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                           "MatMulInteger", "DynamicQuantizeLinear"})


def onnx_is_quantized(path: Path) -> bool:
    """Whether the ONNX model at ``path`` holds quantized ops (edgeprune's or anyone else's); False for a file
    that does not parse (loading it is where that gets reported)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - DecodeError, OSError ...: not a model, so not a quantized one
        return False
    return any(node.op_type in QUANTIZED_OPS for node in model.graph.node)


class _Images:
    """``onnxruntime.quantization``'s calibration reader over NCHW float images, one per inference."""

    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [{input_name: images[i:i + 1].astype(np.float32)} for i in range(len(images))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_onnx_int8(source: Path, dest: Path, images: np.ndarray, input_name: str,
                       float_layers: Collection[str] = (), calibration_cache: Path | None = None,
                       float_modules: Collection[str] = ()) -> None:
    """Write the INT8 (QDQ) form of the float ONNX model ``source`` to ``dest``, calibrated on ``images``
    (model inputs, N x C x H x W, already normalised).

    ``float_layers``: layer labels (see :func:`~edgeprune.runtimes.onnx_labels.compute_layers`) left in float
    (mixed precision); labels the model does not have are ignored (a depth-pruned candidate lost them).
    ``calibration_cache``: a JSON file of activation ranges, written on first use and read after (only for
    quantizing the same float model again, e.g. with other float layers). ``float_modules``: module paths whose own
    operations, of every kind, stay float (a detector's box decoding: see ``edgeprune_float_modules``)."""
    if len(images) == 0:
        raise InputError("INT8 quantization needs calibration images (--calib-images, from --data)")
    with tempfile.TemporaryDirectory(prefix="edgeprune-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            with heartbeat(f"quantizing to INT8 with ONNX Runtime's quantizer on {len(images)} images"), \
                    quantizer_notes_to_debug(source.name):
                _quantize(source, prepared, dest, images, input_name, float_layers, calibration_cache, float_modules)
        except InputError:
            raise
        except Exception as exc:  # the quantizer raises many types on a graph it cannot handle
            raise InputError(f"ONNX Runtime's quantizer cannot quantize {source.name}: {type(exc).__name__}: "
                             f"{first_line(exc, 200)}") from None
    log.debug("quantized %s to INT8 on %d calibration images", source.name, len(images))


def _quantize(source: Path, prepared: Path, dest: Path, images: np.ndarray, input_name: str,
              float_layers: Collection[str], calibration_cache: Path | None, float_modules: Collection[str]) -> None:
    """quant_pre_process, then quantize_static (see :func:`quantize_onnx_int8`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    exclude = [node for node, label in compute_layers(prepared).items() if label in float_layers]
    exclude += [node for node in module_nodes(prepared, float_modules) if node not in exclude]
    quantize_static(str(prepared), str(dest), _Images(input_name, images), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                    calibration_cache_path=None if calibration_cache is None else str(calibration_cache),
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    log.debug("%s: %d nodes left in float", source.name, len(exclude))

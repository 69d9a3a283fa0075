"""INT8 OpenVINO IR by NNCF's post-training quantization (``nncf.quantize``), the tool OpenVINO documents.

The float IR is read back, NNCF inserts FakeQuantize operations calibrated on the calibration images (its
``PERFORMANCE`` preset: symmetric int8 weights with per-channel scales and symmetric activations, the form
OpenVINO's CPU and NPU plugins run as integer kernels), and the result is saved as IR with fp32 constants.
The model's input and output stay float.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np

from edgeprune.errors import InputError, first_line
from edgeprune.progress import heartbeat
from edgeprune.runtimes.openvino.layers import OPENVINO_COMPUTE

log = logging.getLogger(__name__)


def openvino_is_quantized(path: Path) -> bool:
    """Whether the OpenVINO IR at ``path`` holds FakeQuantize operations (NNCF's, or anyone's); False for a
    file OpenVINO cannot read (loading it is where that gets reported)."""
    import openvino as ov

    try:
        model = ov.Core().read_model(str(path))
    except Exception:  # noqa: BLE001 - not a readable IR, so not a quantized one
        return False
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` while the block runs; its level is restored after (nothing global
    changes: ``nncf.set_log_level`` left every handler it found at ERROR, pytest's capture included)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def quantize_openvino_int8(source: Path, dest: Path, images: np.ndarray, float_nodes: Collection[str] = ()) -> None:
    """Write the INT8 form of the float IR ``source`` (``.xml``) to ``dest`` (``.xml`` + ``.bin``), calibrated
    on ``images`` (model inputs, N x C x H x W or N x H x W x C as the IR takes them, already normalised).

    ``float_nodes``: names of the ONNX nodes the IR was read from whose compute operations stay in float (NNCF's
    ignored scope; mixed precision)."""
    if len(images) == 0:
        raise InputError("INT8 quantization needs calibration images (--calib-images, from --data)")
    with _quiet("torch.utils.cpp_extension"):  # NNCF imports torch's extension tools, which warn about CUDA
        import nncf
    import openvino as ov

    batches = [np.ascontiguousarray(images[i:i + 1], dtype=np.float32) for i in range(len(images))]
    try:
        model = ov.Core().read_model(str(source))
        ignored = _float_operations(model, float_nodes)
        with contextlib.redirect_stdout(io.StringIO()), _quiet("nncf"), \
                heartbeat(f"quantizing to INT8 with NNCF on {len(batches)} images"):  # NNCF's bars and notes hidden
            quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                                      preset=nncf.QuantizationPreset.PERFORMANCE,
                                      ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
        ov.save_model(quantized, str(dest), compress_to_fp16=False)
    except Exception as exc:  # NNCF raises many types on a graph it cannot handle
        raise InputError(f"NNCF cannot quantize {Path(source).name}: {type(exc).__name__}: "
                         f"{first_line(exc, 200)}") from None
    log.debug("quantized %s to INT8 with NNCF on %d calibration images", Path(source).name, len(images))


def _float_operations(model: object, float_nodes: Collection[str]) -> list[str]:
    """The IR's compute operations read from ``float_nodes`` (OpenVINO names them ``<onnx node>/<suffix>``)."""
    wanted = set(float_nodes)
    return [op.get_friendly_name() for op in model.get_ops()  # type: ignore[attr-defined]
            if op.get_type_name() in OPENVINO_COMPUTE and op.get_friendly_name().split("/")[0] in wanted]

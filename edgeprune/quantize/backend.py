"""A runtime backend whose exports are quantized: what ``--precision int8`` measures and ships."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.backends.base import Artifact, Backend
from edgeprune.errors import InputError
from edgeprune.quantize.onnx_int8 import quantize_onnx_int8
from edgeprune.target import Target

if TYPE_CHECKING:
    import torch
    from torch import nn

#: the runtimes edgeprune quantizes for so far (OpenVINO by NNCF and LiteRT are to follow)
INT8_RUNTIMES = ("onnxruntime",)

#: calibration images used for INT8 quantization at most (ONNX Runtime's examples use a few hundred)
MAX_CALIBRATION_IMAGES = 128


def check_int8_target(target: Target) -> None:
    """Refuse ``--precision int8`` for a runtime edgeprune does not quantize for yet."""
    if target.precision == "int8" and target.runtime not in INT8_RUNTIMES:
        raise InputError(f"--precision int8 is implemented for ONNX Runtime targets (e.g. 'cpu') so far; target "
                         f"'{target.name}' runs {target.runtime}, whose quantizer edgeprune does not drive yet")


class Int8Backend:
    """``inner``'s export followed by INT8 quantization calibrated on ``calibration`` (model inputs, NCHW).

    Loading, timing and everything else are ``inner``'s: a quantized ONNX file loads like any other.
    """

    name: ClassVar[str] = "onnxruntime"
    artifact_format: ClassVar[str] = "onnx"

    def __init__(self, inner: Backend, calibration: np.ndarray) -> None:
        if inner.name not in INT8_RUNTIMES:
            raise InputError(f"INT8 quantization for {inner.name} is not implemented yet")
        self.inner = inner
        self.calibration = np.asarray(calibration[:MAX_CALIBRATION_IMAGES], dtype=np.float32)

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Export the float model, quantize it, and return the INT8 artifact at ``out_path`` (``.onnx``)."""
        dest = Path(out_path).with_suffix(".onnx")
        with tempfile.TemporaryDirectory(prefix="edgeprune-fp32-") as tmp:
            fp32 = self.inner.export(model, example, Path(tmp) / "fp32", target)
            staged = Path(tmp) / "int8.onnx"
            quantize_onnx_int8(fp32.path, staged, self.calibration, fp32.input_name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), dest)
        return Artifact(dest, fp32.format, fp32.input_name, fp32.input_shape)

    def describe(self) -> dict[str, Any]:
        """How the artifacts are quantized, for the report."""
        return {"precision": "int8", "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                "weights": "int8, symmetric, one scale per output channel",
                "activations": "uint8, asymmetric, min/max calibration",
                "calibration_images": len(self.calibration)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def for_precision(backend: Backend, target: Target, calibration: np.ndarray) -> Backend:
    """The backend that exports ``target``'s precision: ``backend`` itself, or :class:`Int8Backend` around it."""
    check_int8_target(target)
    if target.precision != "int8":
        return backend
    return Int8Backend(backend, calibration)  # type: ignore[return-value]

"""A runtime backend whose exports are quantized: what ``--precision int8`` measures and ships."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune.backends.base import Artifact, Backend
from edgeprune.errors import InputError
from edgeprune.quantize.onnx_int8 import quantize_onnx_int8
from edgeprune.quantize.openvino_int8 import quantize_openvino_int8
from edgeprune.quantize.tflite_int8 import quantize_tflite_int8
from edgeprune.target import Target

if TYPE_CHECKING:
    import torch
    from torch import nn

#: the runtimes edgeprune quantizes for, each with its own maintained quantizer
INT8_RUNTIMES = ("onnxruntime", "openvino", "litert")

#: calibration images used for INT8 quantization at most (ONNX Runtime's examples use a few hundred)
MAX_CALIBRATION_IMAGES = 128


def check_int8_target(target: Target) -> None:
    """Refuse ``--precision int8`` for a runtime edgeprune does not quantize for yet."""
    if target.precision == "int8" and target.runtime not in INT8_RUNTIMES:
        raise InputError(f"--precision int8 is implemented for ONNX Runtime, OpenVINO and LiteRT targets; target "
                         f"'{target.name}' runs {target.runtime}, whose quantizer edgeprune does not drive")


#: the label :meth:`Int8Backend.export` gives the IR nodes of a model's float modules
FLOAT_MODULE = "<float module>"


class Int8Backend:
    """``inner``'s export followed by INT8 quantization calibrated on ``calibration`` (model inputs, NCHW), by
    the runtime's own quantizer: ONNX Runtime's for ONNX files, NNCF for OpenVINO IR.

    Loading, timing and everything else are ``inner``'s: a quantized file loads like any other.
    """

    def __init__(self, inner: Backend, calibration: np.ndarray, float_layers: tuple[str, ...] = ()) -> None:
        if inner.name not in INT8_RUNTIMES:
            raise InputError(f"INT8 quantization for {inner.name} is not implemented yet")
        self.inner = inner
        self.name, self.artifact_format = inner.name, inner.artifact_format
        self.calibration = np.asarray(calibration[:MAX_CALIBRATION_IMAGES], dtype=np.float32)
        #: layers left in float (mixed precision), by module path; see :mod:`edgeprune.quantize.mixed`
        self.float_layers = tuple(float_layers)
        #: activation ranges reused between exports of the *same* float model (set while the mixed-precision
        #: search quantizes one model many times; ONNX Runtime only)
        self.calibration_cache: Path | None = None
        #: module paths whose own operations stay float in every artifact (a detector's box decoding), from the
        #: model's ``edgeprune_float_modules`` at each export
        self.float_modules: tuple[str, ...] = ()

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Export the float model, quantize it, and return the INT8 artifact at ``out_path`` (its format's
        suffix; an IR's ``.bin`` beside its ``.xml``)."""
        self.float_modules = tuple(getattr(model, "edgeprune_float_modules", ()) or ())
        with tempfile.TemporaryDirectory(prefix="edgeprune-fp32-") as tmp:
            fp32 = self.inner.export(model, example, Path(tmp) / "fp32", target)
            nodes = self.layer_nodes(model, example) if self.inner.name == "openvino" and self.float_layers else {}
            if self.inner.name == "openvino" and self.float_modules:  # an IR keeps the ONNX nodes' names
                nodes.update({node: FLOAT_MODULE for node in self.module_nodes(model, example, self.float_modules)})
            return self.quantize(fp32, out_path, nodes)

    def quantize(self, fp32: Artifact, out_path: Path, layer_nodes: dict[str, str] | None = None) -> Artifact:
        """Quantize the float artifact ``fp32`` (this backend's export) to ``out_path``, keeping
        :attr:`float_layers` in float. An IR names its operations after the ONNX nodes it was read from but keeps
        no module paths: ``layer_nodes`` (:meth:`layer_nodes`) maps them for it."""
        suffix = fp32.path.suffix
        with tempfile.TemporaryDirectory(prefix="edgeprune-int8-") as tmp:
            staged = Path(tmp) / f"int8{suffix}"
            images = self.calibration if len(fp32.input_shape) != 4 or fp32.input_shape[1] == \
                self.calibration.shape[1] else self.calibration.transpose(0, 2, 3, 1)  # an NHWC artifact
            if self.inner.name == "openvino":
                nodes = [node for node, label in (layer_nodes or {}).items()
                         if label in self.float_layers or label == FLOAT_MODULE]
                if self.float_layers and not layer_nodes:
                    raise ValueError("an IR's float layers need the ONNX nodes they were read from (layer_nodes)")
                quantize_openvino_int8(fp32.path, staged, images, nodes)
            elif self.inner.name == "litert":
                if self.float_layers:
                    raise InputError("mixed precision (layers kept in float) is implemented for ONNX Runtime and "
                                     "OpenVINO targets; LiteRT models here are fully integer")
                quantize_tflite_int8(fp32.path, staged, images)
            else:
                quantize_onnx_int8(fp32.path, staged, images, fp32.input_name, self.float_layers,
                                   self.calibration_cache, self.float_modules)
            dest = Path(out_path).with_suffix(suffix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            for part in sorted(Path(tmp).glob("int8.*")):
                shutil.move(str(part), dest.with_suffix(part.suffix))
        return Artifact(dest, fp32.format, fp32.input_name, fp32.input_shape)

    @staticmethod
    def module_nodes(model: nn.Module, example: torch.Tensor, modules: tuple[str, ...]) -> list[str]:
        """The ONNX nodes (every kind) of ``modules`` in an export of ``model`` made for the purpose."""
        from edgeprune.backends.onnx_export import export_onnx
        from edgeprune.backends.onnx_labels import module_nodes

        with tempfile.TemporaryDirectory(prefix="edgeprune-labels-") as tmp:
            return module_nodes(export_onnx(model, example, Path(tmp) / "labels.onnx"), modules)

    @staticmethod
    def layer_nodes(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
        """``{ONNX node: layer label}`` for ``model``'s compute layers, from an ONNX export made for the purpose
        (the export is deterministic, so its node names are those the runtime's own export gives)."""
        from edgeprune.backends.onnx_export import export_onnx
        from edgeprune.backends.onnx_labels import compute_layers

        with tempfile.TemporaryDirectory(prefix="edgeprune-labels-") as tmp:
            return compute_layers(export_onnx(model, example, Path(tmp) / "labels.onnx"))

    def describe(self) -> dict[str, Any]:
        """How the artifacts are quantized, for the report."""
        mixed = {"float_layers": list(self.float_layers)} if self.float_layers else {}
        return {**self._describe(), **mixed}

    def _describe(self) -> dict[str, Any]:
        if self.inner.name == "litert":
            return {"precision": "int8", "tool": "ai_edge_quantizer (recipe static_wi8_ai8)",
                    "format": "fully integer TFLite (int8 input and output tensors)",
                    "weights": "int8, one scale per output channel", "activations": "int8, min/max calibration",
                    "calibration_images": len(self.calibration)}
        if self.inner.name == "openvino":
            return {"precision": "int8", "tool": "nncf.quantize", "format": "OpenVINO IR with FakeQuantize",
                    "weights": "int8, symmetric, one scale per output channel (preset PERFORMANCE)",
                    "activations": "int8, symmetric, min/max calibration",
                    "calibration_images": len(self.calibration)}
        return {"precision": "int8", "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                "weights": "int8, symmetric, one scale per output channel",
                "activations": "uint8, asymmetric, min/max calibration",
                "calibration_images": len(self.calibration)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def for_precision(backend: Backend, target: Target, calibration: np.ndarray,
                  float_layers: tuple[str, ...] = ()) -> Backend:
    """The backend that exports ``target``'s precision: ``backend`` itself, or :class:`Int8Backend` around it
    (``float_layers`` left in float)."""
    check_int8_target(target)
    if target.precision != "int8":
        return backend
    return Int8Backend(backend, calibration, float_layers)  # type: ignore[return-value]

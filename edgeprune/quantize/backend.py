"""A runtime backend whose exports are quantized: what ``--precision int8`` measures and ships."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune.errors import InputError
from edgeprune.runtimes.base import FLOAT_MODULE, Artifact, Backend, Int8Request
from edgeprune.runtimes.table import RUNTIME_FACTS, facts_of
from edgeprune.target import Target

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FLOAT_MODULE", "MAX_CALIBRATION_IMAGES", "Int8Backend", "check_int8_target", "for_precision"]

#: calibration images used for INT8 quantization at most (ONNX Runtime's examples use a few hundred)
MAX_CALIBRATION_IMAGES = 128


def check_int8_target(target: Target) -> None:
    """Refuse ``--precision int8`` for a runtime edgeprune does not quantize for."""
    if target.precision == "int8" and not facts_of(target.runtime).int8:
        capable = ", ".join(f.title for f in RUNTIME_FACTS if f.int8)
        raise InputError(f"--precision int8 is implemented for {capable} targets; target '{target.name}' runs "
                         f"{facts_of(target.runtime).title}, whose quantizer edgeprune does not drive")


class Int8Backend:
    """``inner``'s export followed by INT8 quantization calibrated on ``calibration`` (model inputs, NCHW), by
    the runtime's own quantizer (``export_int8`` of the runtime's backend).

    Loading, timing and everything else are ``inner``'s: a quantized file loads like any other.
    """

    def __init__(self, inner: Backend, calibration: np.ndarray, float_layers: tuple[str, ...] = ()) -> None:
        if not inner.facts.int8:
            raise InputError(f"INT8 quantization for {inner.facts.title} is not implemented")
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
        """Export the model quantized, at ``out_path`` (its format's suffix; every file of the artifact beside)."""
        self.float_modules = tuple(getattr(model, "edgeprune_float_modules", ()) or ())
        nodes: dict[str, str] | None = None
        if self.inner.needs_layer_nodes and (self.float_layers or self.float_modules):
            nodes = self.layer_nodes(model, example) if self.float_layers else {}
            if self.float_modules:  # the file keeps the ONNX nodes' names
                nodes.update({node: FLOAT_MODULE for node in self.module_nodes(model, example, self.float_modules)})
        return self.inner.export_int8(model, example, out_path, target, self._images(example.shape),
                                      self._request(nodes))

    def quantize(self, fp32: Artifact, out_path: Path, layer_nodes: dict[str, str] | None = None) -> Artifact:
        """Quantize the float artifact ``fp32`` (this backend's export) to ``out_path``, keeping
        :attr:`float_layers` in float. A runtime whose files keep ONNX node names but no module paths
        (``needs_layer_nodes``) finds them by ``layer_nodes`` (:meth:`layer_nodes`)."""
        request = self._request(layer_nodes, fp32.input_name)
        return self.inner.quantize_file(fp32, out_path, self._images(fp32.input_shape), request)

    def _images(self, input_shape: Any) -> np.ndarray:
        """The calibration images in the artifact's layout (an NHWC artifact takes them transposed)."""
        shape = tuple(input_shape)
        if len(shape) != 4 or shape[1] == self.calibration.shape[1]:
            return self.calibration
        return self.calibration.transpose(0, 2, 3, 1)

    def _request(self, layer_nodes: dict[str, str] | None, input_name: str | None = None) -> Int8Request:
        from edgeprune.runtimes.onnx_export import INPUT_NAME

        return Int8Request(input_name=input_name or INPUT_NAME, float_layers=self.float_layers,
                           float_modules=self.float_modules, layer_nodes=layer_nodes,
                           calibration_cache=self.calibration_cache)

    @staticmethod
    def module_nodes(model: nn.Module, example: torch.Tensor, modules: tuple[str, ...]) -> list[str]:
        """The ONNX nodes (every kind) of ``modules`` in an export of ``model`` made for the purpose."""
        from edgeprune.runtimes.onnx_export import export_onnx
        from edgeprune.runtimes.onnx_labels import module_nodes

        with tempfile.TemporaryDirectory(prefix="edgeprune-labels-") as tmp:
            return module_nodes(export_onnx(model, example, Path(tmp) / "labels.onnx"), modules)

    @staticmethod
    def layer_nodes(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
        """``{ONNX node: layer label}`` for ``model``'s compute layers, from an ONNX export made for the purpose
        (the export is deterministic, so its node names are those the runtime's own export gives)."""
        from edgeprune.runtimes.onnx_export import export_onnx
        from edgeprune.runtimes.onnx_labels import compute_layers

        with tempfile.TemporaryDirectory(prefix="edgeprune-labels-") as tmp:
            return compute_layers(export_onnx(model, example, Path(tmp) / "labels.onnx"))

    def describe(self) -> dict[str, Any]:
        """How the artifacts are quantized, for the report."""
        mixed = {"float_layers": list(self.float_layers)} if self.float_layers else {}
        return {**self.inner.describe_int8(len(self.calibration)), **mixed}

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

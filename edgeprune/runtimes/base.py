"""The one protocol every runtime implements, and the base class its folder's backend derives from.

A runtime's backend exports a PyTorch model to its format (on the workstation), loads files into sessions that
run, time and profile them (on the workstation and in the device agent), quantizes with the runtime's own
quantizer where it has one, and reads back from its files what they contain (the precision of each layer, the
weights' zeros). Its facts (name, format, files, extras, capabilities) are its row in
:mod:`edgeprune.runtimes.table`.

A backend module imports its runtime lazily (inside methods), so ``import edgeprune`` works without the
optional runtimes; a missing runtime raises :class:`~edgeprune.errors.MissingRuntimeError` naming the extra.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.runtimes.table import ARTIFACT_FORMATS, RuntimeFacts, facts_of
from edgeprune.timing import LatencyStats, TimingSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeprune.target import Target

__all__ = ["ARTIFACT_FORMATS", "FLOAT_MODULE", "Artifact", "Backend", "Int8Request", "LayerPrecision", "LayerTiming",
           "Session", "single_input"]


@dataclass(frozen=True)
class Artifact:
    """A model file in a runtime's format.

    Attributes:
        path: the main file (``model.onnx``, ``model.xml`` with ``model.bin`` beside it, ``model.tflite``).
        format: one of :data:`~edgeprune.runtimes.table.ARTIFACT_FORMATS`.
        input_name: name of the single input tensor.
        input_shape: shape of that input, batch included (N, C, H, W), as the artifact expects it.
    """

    path: Path
    format: str
    input_name: str
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerTiming:
    """Time attributed by a runtime's own profiler to one executed (possibly fused) node.

    Attributes:
        name: the runtime's node name (ORT and OpenVINO keep the ONNX node path).
        op_type: the runtime's kernel or layer type (``"FusedConv"``, ``"Convolution"`` ...).
        ms: median time per inference in milliseconds.
    """

    name: str
    op_type: str
    ms: float


class Session(Protocol):
    """A loaded artifact, configured with the target's threads and precision."""

    def inputs(self) -> list[tuple[str, list[int]]]:
        """The name and dims of each input, as the file declares them (-1 for a dynamic dimension)."""
        ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference and return the outputs."""
        ...

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Measure the latency of one inference on ``inputs``."""
        ...

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Per-node times from the runtime's profiler; raises NotImplementedError where there is none."""
        ...


def single_input(inputs: Mapping[str, np.ndarray], name: str, title: str) -> np.ndarray:
    """The one input of a single-input model, found by its own ``name`` or, failing that, as the mapping's only
    value (a file's input may be named otherwise than callers say: TFLite's ``serving_default_args_0``, ncnn's
    ``in0``), as contiguous float32; one line naming the ``title`` runtime when there are several."""
    if name in inputs:
        value = inputs[name]
    elif len(inputs) == 1:
        value = next(iter(inputs.values()))
    else:
        raise InputError(f"{title} model takes one input, got {len(inputs)}: {', '.join(inputs)}")
    return np.ascontiguousarray(value, dtype=np.float32)


@dataclass(frozen=True)
class LayerPrecision:
    """One compute layer of an artifact and the precision it runs at (read back from the file)."""

    name: str
    op_type: str
    weights: str
    activations: str

    @property
    def precision(self) -> str:
        """``int8``, ``int8 weights`` (float activations) or the float type."""
        if self.weights == "int8" and self.activations == "int8":
            return "int8"
        if self.weights == "int8":
            return "int8 weights"
        # float weights: the layer computes in float, even on an input dequantized from int8 (mixed precision)
        return self.activations if self.activations != "int8" else self.weights

    def to_dict(self) -> dict[str, Any]:
        """For report.json."""
        return {**asdict(self), "precision": self.precision}


@dataclass(frozen=True)
class Int8Request:
    """What one INT8 quantization is asked to do besides quantizing.

    Attributes:
        input_name: the artifact's input tensor.
        float_layers: compute layers left in float (mixed precision), by module path.
        float_modules: module paths whose own operations all stay float (a detector's box decoding).
        layer_nodes: ``{ONNX node: label}`` of the export the file was made from (module paths, or
            :data:`FLOAT_MODULE`), for runtimes whose files keep ONNX node names but no module paths.
        calibration_cache: activation ranges reused between quantizations of the same float model.
    """

    input_name: str
    float_layers: tuple[str, ...] = ()
    float_modules: tuple[str, ...] = ()
    layer_nodes: Mapping[str, str] | None = None
    calibration_cache: Path | None = None


#: the label :class:`Int8Request.layer_nodes` gives the nodes of a model's float modules
FLOAT_MODULE = "<float module>"


class Backend:
    """What every runtime's backend has in common; each runtime's folder derives its backend from this.

    Subclasses set :attr:`name` and :attr:`artifact_format` (the table's row) and implement :meth:`export` and
    :meth:`load`; the other methods are implemented where the runtime has the capability its row claims (the
    contract test, ``tests/runtimes/contract.py``, checks each claim on a whole fit).
    """

    name: ClassVar[str]
    artifact_format: ClassVar[str]
    #: whether :meth:`quantize_file` needs :attr:`Int8Request.layer_nodes` to leave layers in float
    needs_layer_nodes: ClassVar[bool] = False

    @property
    def facts(self) -> RuntimeFacts:
        """This runtime's row of the facts table."""
        return facts_of(self.name)

    def available(self) -> bool:
        """Whether the runtime's Python package is installed."""
        try:
            return importlib.util.find_spec(self.facts.module) is not None
        except (ImportError, ValueError):
            return False

    def require(self) -> None:
        """Raise :class:`~edgeprune.errors.MissingRuntimeError`, naming the pip extra, when the runtime is absent."""
        if not self.available():
            raise MissingRuntimeError(self.facts.title, self.facts.extra)

    def version(self) -> str:
        """The runtime's version string."""
        import importlib.metadata

        return importlib.metadata.version(self.facts.dist)

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Write ``model`` as an artifact at ``out_path`` (suffix chosen by the backend)."""
        raise NotImplementedError

    def load(self, artifact: Artifact, target: Target) -> Session:
        """Load an artifact for running and timing with the target's threads and precision."""
        raise NotImplementedError

    # ---- INT8 -----------------------------------------------------------------------------------------------

    def export_int8(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target,
                    images: np.ndarray, request: Int8Request) -> Artifact:
        """The INT8 artifact of ``model`` at ``out_path``, calibrated on ``images`` (model inputs, NCHW).

        The default exports the float artifact and quantizes the file (:meth:`quantize_file`); a runtime whose
        quantizer works on the PyTorch model overrides this.
        """
        with tempfile.TemporaryDirectory(prefix="edgeprune-fp32-") as tmp:
            fp32 = self.export(model, example, Path(tmp) / "fp32", target)
            return self.quantize_file(fp32, out_path, images, request)

    def quantize_file(self, fp32: Artifact, out_path: Path, images: np.ndarray, request: Int8Request) -> Artifact:
        """Quantize the float artifact ``fp32`` (this runtime's format, or ONNX where it reads ONNX) to
        ``out_path`` with the runtime's own quantizer; the result is in this runtime's format."""
        raise InputError(f"{self.facts.title}: INT8 quantization of a file is not available")

    def describe_int8(self, calibration_images: int) -> dict[str, Any]:
        """How INT8 artifacts are quantized (tool, format, weights, activations), for the report."""
        raise InputError(f"{self.facts.title}: INT8 is not available")

    def is_quantized(self, path: Path) -> bool:
        """Whether the file at ``path`` holds an INT8 model (whoever quantized it)."""
        return False

    #: how NNCF should export a quantization-aware model for this runtime (``"qdq"`` pairs or
    #: ``"fake_quantize"`` operations); None where the runtime's INT8 files cannot come from it
    qat_onnx_mode: ClassVar[str | None] = None

    def artifact_from_qat_onnx(self, onnx_path: Path, out_path: Path, input_shape: tuple[int, ...]) -> Artifact:
        """This runtime's INT8 artifact at ``out_path`` from NNCF's ONNX export (in :attr:`qat_onnx_mode`) of a
        quantization-aware model."""
        raise InputError(f"quantization-aware training is implemented for runtimes that read NNCF's export; "
                         f"{self.facts.title} does not")

    # ---- reading files back ---------------------------------------------------------------------------------

    def layer_precisions(self, path: Path) -> list[LayerPrecision]:
        """The compute layers of the artifact at ``path``, in graph order, with the precision each runs at."""
        raise NotImplementedError(f"no layer reader for {self.facts.title}")

    def weight_tensors(self, path: Path) -> list[tuple[np.ndarray, Any]]:
        """Each compute layer's stored weight tensor and its zero point (0 for float weights)."""
        raise NotImplementedError(f"no weight reader for {self.facts.title}")

    def check_upload(self, path: Path) -> None:
        """A cheap structural check of an uploaded file in this format (the agent runs it before loading);
        raises :class:`~edgeprune.errors.InputError` with one line. Imports no framework."""

    def device_available(self, device: str) -> bool:
        """Whether this machine has the runtime's ``device`` (``"cpu"`` always)."""
        return device.lower() == "cpu"

    # ---- helpers for subclasses -----------------------------------------------------------------------------

    def staged_files(self, out_path: Path, write: Any) -> Path:
        """Call ``write(staged_main_file)`` in a temporary folder and move every file it wrote (the artifact's
        files) beside ``out_path``, named by its stem; returns the main file."""
        facts = self.facts
        dest = facts.main_file(Path(out_path))
        with tempfile.TemporaryDirectory(prefix=f"edgeprune-{self.name}-") as tmp:
            staged = facts.main_file(Path(tmp) / "staged")
            write(staged)
            dest.parent.mkdir(parents=True, exist_ok=True)
            for part, final in zip(facts.files(staged), facts.files(dest)):
                if part.exists():
                    shutil.move(str(part), final)
        return dest

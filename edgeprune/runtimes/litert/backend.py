"""LiteRT (TensorFlow Lite) backend: PyTorch → ``.tflite`` with litert-torch, run and time with XNNPACK.

The converter and the interpreter write to the process's file descriptors from native code (absl/TF logs,
a rich progress tree, the XNNPACK delegate banner), which Python's ``redirect_stdout`` cannot catch;
:func:`quiet_native_output` redirects the descriptors themselves for the duration and sends what was
written to this module's DEBUG log instead.

The exported model keeps PyTorch's NCHW input layout (the converter inserts a transpose), so a session
takes the same array as the PyTorch model. Only fp32 is supported: fp16/int8 TFLite models need
quantisation, which edgeprune does not do.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError, first_line
from edgeprune.runtimes.base import Artifact, Backend, Int8Request, LayerPrecision, LayerTiming, single_input
from edgeprune.runtimes.native_output import quiet_native_output
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec, measure_latency

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

NO_PROFILER_MESSAGE = "LiteRT has no per-op profiler from Python; edgeprune times single-kernel probe models instead"


def _import_converter() -> Any:
    if importlib.util.find_spec("litert_torch") is None:
        raise MissingRuntimeError("LiteRT", "tflite")
    if "litert_torch" in sys.modules:
        return sys.modules["litert_torch"]
    try:
        with quiet_native_output():
            import litert_torch
    except ImportError:  # litert_torch present but one of its own dependencies (ai_edge_litert ...) missing
        raise MissingRuntimeError("LiteRT", "tflite") from None
    return litert_torch


def _interpreter_class() -> Any:
    if importlib.util.find_spec("ai_edge_litert") is None:
        raise MissingRuntimeError("LiteRT", "tflite")
    with quiet_native_output():
        from ai_edge_litert.interpreter import Interpreter
    return Interpreter


def _require_fp32(target: Target) -> None:
    """Refuse precisions the LiteRT backend cannot run: a float model runs in fp32, an INT8 one (edgeprune's,
    from :mod:`edgeprune.runtimes.litert.int8`, or anyone's) in int8 as the file says; fp16 is not offered."""
    if target.precision not in ("fp32", "int8"):
        raise InputError(
            f"target '{target.name}': the LiteRT backend runs fp32 and int8 models, not '{target.precision}'"
        )


def _quantization(detail: Mapping[str, object]) -> tuple[np.dtype, float, int] | None:
    """(dtype, scale, zero point) of an integer input or output tensor; None for a float one."""
    dtype = np.dtype(detail["dtype"])  # type: ignore[call-overload]
    if dtype.kind not in "iu":
        return None
    scale, zero = detail.get("quantization", (0.0, 0))  # type: ignore[misc]
    return dtype, float(scale) or 1.0, int(zero)


class LiteRtSession:
    """A LiteRT interpreter (XNNPACK delegate, the target's thread count) for a single-input model."""

    def __init__(self, path: Path, threads: int) -> None:
        interpreter_cls = _interpreter_class()
        try:
            with quiet_native_output():  # the XNNPACK delegate announces itself on stderr
                self._interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
                self._interpreter.allocate_tensors()
        except Exception as exc:
            raise InputError(f"LiteRT cannot load {path}: {first_line(exc)}") from None
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise InputError(f"LiteRT model {path} has {len(inputs)} inputs; edgeprune handles one")
        self.input_name = str(inputs[0]["name"])
        self.input_shape = tuple(int(v) for v in inputs[0]["shape"])
        self._input_index = int(inputs[0]["index"])
        outputs = self._interpreter.get_output_details()
        self._output_indices = [int(o["index"]) for o in outputs]
        # a fully integer model (int8 input and output tensors, as microcontroller deployments use) takes and
        # gives quantized values: float inputs are quantized with the input's scale, outputs dequantized
        self._input_quant = _quantization(inputs[0])
        self._output_quant = [_quantization(o) for o in outputs]

    def _input_array(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The single input, found by the model's tensor name or, failing that, as the mapping's only value
        (TFLite names it ``serving_default_args_0``, callers usually say ``input``)."""
        array = single_input(inputs, self.input_name, "LiteRT")
        if tuple(array.shape) != self.input_shape:
            raise InputError(f"LiteRT model expects input shape {self.input_shape}, got {tuple(array.shape)}")
        if self._input_quant is not None:
            dtype, scale, zero = self._input_quant
            info = np.iinfo(dtype)
            array = np.clip(np.round(array / scale) + zero, info.min, info.max).astype(dtype)
        return array

    def inputs(self) -> list[tuple[str, list[int]]]:
        """The input's name and dims (the session refuses multi-input models itself)."""
        return [(self.input_name, list(self.input_shape))]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference on NCHW input and return copies of the outputs."""
        self._interpreter.set_tensor(self._input_index, self._input_array(inputs))
        self._interpreter.invoke()
        outputs = []
        for index, quant in zip(self._output_indices, self._output_quant):
            value = np.array(self._interpreter.get_tensor(index))
            if quant is not None:
                value = (value.astype(np.float32) - quant[2]) * quant[1]
            outputs.append(value)
        return outputs

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Median/p90/CV of single-inference latency: each timed call is ``set_tensor`` + ``invoke`` (copying
        the input in, as ONNX Runtime and OpenVINO do per call); reading the outputs is not timed."""
        array = self._input_array(inputs)
        index, interpreter = self._input_index, self._interpreter

        def call() -> None:
            interpreter.set_tensor(index, array)
            interpreter.invoke()

        return measure_latency(call, spec)

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Not available: raises NotImplementedError (see :data:`NO_PROFILER_MESSAGE`)."""
        raise NotImplementedError(NO_PROFILER_MESSAGE)


class LiteRtBackend(Backend):
    """``.tflite`` files converted by litert-torch and executed by the LiteRT interpreter (XNNPACK)."""

    name: ClassVar[str] = "litert"
    artifact_format: ClassVar[str] = "tflite"

    def available(self) -> bool:
        """Whether both the converter (``litert_torch``) and the interpreter (``ai_edge_litert``) are importable."""
        return all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))

    def version(self) -> str:
        """The interpreter's (ai-edge-litert) version."""
        from importlib import metadata

        try:
            return metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:
            raise MissingRuntimeError("LiteRT", "tflite") from None

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Convert ``model`` (in eval mode) at the example's shape to ``out_path.with_suffix('.tflite')``."""
        _require_fp32(target)
        litert_torch = _import_converter()
        path = out_path.with_suffix(".tflite")
        was_training = model.training
        model.eval()
        try:
            with quiet_native_output():
                litert_torch.convert(model, (example,)).export(str(path))
        except Exception as exc:  # the converter raises many types; the user needs one line
            raise InputError(f"LiteRT conversion failed: {first_line(exc)}") from None
        finally:
            model.train(was_training)
        session = LiteRtSession(path, target.threads)
        return Artifact(path, self.artifact_format, session.input_name, session.input_shape)

    def load(self, artifact: Artifact, target: Target) -> LiteRtSession:
        """Load a ``.tflite`` artifact with the target's thread count (fp32 targets only)."""
        _require_fp32(target)
        if artifact.format != self.artifact_format:
            raise InputError(
                f"the LiteRT backend cannot load a '{artifact.format}' artifact ({artifact.path}); it reads tflite"
            )
        return LiteRtSession(artifact.path, target.threads)

    def quantize_file(self, fp32: Artifact, out_path: Path, images: np.ndarray, request: Int8Request) -> Artifact:
        """ai-edge-quantizer's fully integer recipe (:mod:`edgeprune.runtimes.litert.int8`); every layer is
        quantized (its recipe here leaves none in float)."""
        from edgeprune.runtimes.litert.int8 import quantize_tflite_int8

        if request.float_layers:
            raise InputError("mixed precision (layers kept in float) is implemented for runtimes whose quantizer "
                             "leaves chosen layers in float; LiteRT models here are fully integer")
        dest = self.staged_files(out_path, lambda staged: quantize_tflite_int8(fp32.path, staged, images))
        return Artifact(dest, self.artifact_format, fp32.input_name, fp32.input_shape)

    def describe_int8(self, calibration_images: int) -> dict[str, Any]:
        """ai-edge-quantizer's recipe, as the report states it."""
        return {"precision": "int8", "tool": "ai_edge_quantizer (recipe static_wi8_ai8)",
                "format": "fully integer TFLite (int8 input and output tensors)",
                "weights": "int8, one scale per output channel", "activations": "int8, min/max calibration",
                "calibration_images": calibration_images}

    def is_quantized(self, path: Path) -> bool:
        """Whether the model computes in integers (int8/uint8 tensors; anyone's)."""
        from edgeprune.runtimes.litert.int8 import tflite_is_quantized

        return tflite_is_quantized(Path(path))

    def layer_precisions(self, path: Path) -> list[LayerPrecision]:
        """Each compute op's precision, from its input and weight tensors' dtypes."""
        from edgeprune.runtimes.litert.layers import tflite_layers

        return tflite_layers(Path(path))

    def weight_tensors(self, path: Path) -> list[tuple[np.ndarray, Any]]:
        """Each compute op's weight tensor, with its zero points."""
        from edgeprune.runtimes.litert.weights import tflite_weights

        return tflite_weights(Path(path))

    def check_upload(self, path: Path) -> None:
        """FlatBuffer identifier and a bounds-checked root table (:mod:`edgeprune.runtimes.litert.upload`)."""
        from edgeprune.runtimes.litert.upload import check_tflite

        check_tflite(Path(path))

"""ONNX Runtime backend: export to ONNX, run and time on the CPU execution provider."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.errors import InputError
from edgeprune.runtimes.base import Artifact, Backend, Int8Request, LayerPrecision, LayerTiming
from edgeprune.runtimes.onnx_export import INPUT_NAME, export_onnx
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec, measure_latency

if TYPE_CHECKING:
    import torch
    from torch import nn


class OnnxRuntimeSession:
    """An ``onnxruntime.InferenceSession`` with fixed thread counts and sequential execution."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InputError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from None
        self._path, self._threads = path, threads
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.input_shapes = [tuple(i.shape) for i in self._session.get_inputs()]

    def inputs(self) -> list[tuple[str, list[Any]]]:
        """Each input's name and dims (a symbolic dimension stays as its name)."""
        return [(name, list(shape)) for name, shape in zip(self.input_names, self.input_shapes)]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference."""
        return [np.asarray(o) for o in self._session.run(None, dict(inputs))]

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Median/p90/CV of single-inference latency."""
        feed: dict[str, Any] = dict(inputs)
        run = self._session.run
        return measure_latency(lambda: run(None, feed), spec)

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Per-node median times from ORT's profiler (use to attribute time, not as the latency: profiling
        inflates small kernels)."""
        return profile_onnxruntime(self._path, self._threads, inputs, spec)


class OnnxRuntimeBackend(Backend):
    """ONNX files executed by ONNX Runtime's CPU execution provider."""

    name: ClassVar[str] = "onnxruntime"
    artifact_format: ClassVar[str] = "onnx"

    def version(self) -> str:
        """ONNX Runtime's version."""
        import onnxruntime

        return str(onnxruntime.__version__)

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Export to a single ONNX file (``out_path`` with the suffix ``.onnx``)."""
        out_path = out_path.with_suffix(".onnx")
        export_onnx(model, example, out_path)
        return Artifact(out_path, "onnx", INPUT_NAME, tuple(example.shape))

    def load(self, artifact: Artifact, target: Target) -> OnnxRuntimeSession:
        """Load with the target's thread count."""
        self.require()
        return OnnxRuntimeSession(artifact.path, target.threads)

    def quantize_file(self, fp32: Artifact, out_path: Path, images: np.ndarray, request: Int8Request) -> Artifact:
        """ONNX Runtime's static QDQ quantizer (:mod:`edgeprune.runtimes.onnxruntime.int8`)."""
        from edgeprune.runtimes.onnxruntime.int8 import quantize_onnx_int8

        dest = self.staged_files(out_path, lambda staged: quantize_onnx_int8(
            fp32.path, staged, images, request.input_name, request.float_layers, request.calibration_cache,
            request.float_modules))
        return Artifact(dest, self.artifact_format, fp32.input_name, fp32.input_shape)

    def describe_int8(self, calibration_images: int) -> dict[str, Any]:
        """ONNX Runtime's quantizer, as the report states it."""
        return {"precision": "int8", "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                "weights": "int8, symmetric, one scale per output channel",
                "activations": "uint8, asymmetric, min/max calibration", "calibration_images": calibration_images}

    def is_quantized(self, path: Path) -> bool:
        """Whether the ONNX file holds quantized operators (anyone's)."""
        from edgeprune.runtimes.onnxruntime.int8 import onnx_is_quantized

        return onnx_is_quantized(Path(path))

    #: NNCF exports quantizers as QuantizeLinear/DequantizeLinear pairs: the QDQ model ONNX Runtime runs
    qat_onnx_mode: ClassVar[str | None] = "qdq"

    def artifact_from_qat_onnx(self, onnx_path: Path, out_path: Path, input_shape: tuple[int, ...]) -> Artifact:
        """The QDQ ONNX file NNCF wrote is this runtime's artifact, checked and moved into place."""
        import onnx

        onnx.checker.check_model(str(onnx_path))
        dest = self.staged_files(out_path, lambda staged: shutil.copyfile(onnx_path, staged))
        return Artifact(dest, self.artifact_format, INPUT_NAME, input_shape)

    def layer_precisions(self, path: Path) -> list[LayerPrecision]:
        """Each compute node's precision, read through its QDQ inputs."""
        from edgeprune.runtimes.onnxruntime.layers import onnx_layers

        return onnx_layers(Path(path))

    def weight_tensors(self, path: Path) -> list[tuple[np.ndarray, Any]]:
        """Each compute node's weight initializer, with its zero point."""
        from edgeprune.runtimes.onnxruntime.weights import onnx_weights

        return onnx_weights(Path(path))

    def check_upload(self, path: Path) -> None:
        """Parse, no external data, ``onnx.checker`` (:mod:`edgeprune.runtimes.onnxruntime.upload`)."""
        from edgeprune.runtimes.onnxruntime.upload import check_onnx

        check_onnx(Path(path))


def profile_onnxruntime(
    path: Path, threads: int, inputs: Mapping[str, np.ndarray], spec: TimingSpec
) -> list[LayerTiming]:
    """Run ``spec.min_runs`` profiled inferences in a separate session and return median per-node times."""
    import json
    import os
    import tempfile

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = dict(inputs)
        for _ in range(spec.warmup_runs):
            session.run(None, feed)
        for _ in range(spec.min_runs):
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = {}
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        name = str(event["name"])[: -len("_kernel_time")]
        key = (name, str(event.get("args", {}).get("op_name", "")))
        per_node.setdefault(key, []).append(float(event["dur"]) / 1000.0)
    runs = spec.warmup_runs + spec.min_runs
    timings = []
    for (name, op), durations in per_node.items():
        steady = durations[-spec.min_runs :] if len(durations) >= runs else durations
        timings.append(LayerTiming(name, op, float(np.median(steady))))
    return timings

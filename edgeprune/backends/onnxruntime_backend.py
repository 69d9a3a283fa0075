"""ONNX Runtime backend: export to ONNX, run and time on the CPU execution provider."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.backends.base import Artifact, LayerTiming
from edgeprune.backends.onnx_export import INPUT_NAME, export_onnx
from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.target import RUNTIME_MODULES, Target
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


class OnnxRuntimeBackend:
    """ONNX files executed by ONNX Runtime's CPU execution provider."""

    name: ClassVar[str] = "onnxruntime"
    artifact_format: ClassVar[str] = "onnx"

    def available(self) -> bool:
        """Whether ``onnxruntime`` is importable."""
        return importlib.util.find_spec("onnxruntime") is not None

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
        if not self.available():
            raise MissingRuntimeError("ONNX Runtime", RUNTIME_MODULES["onnxruntime"][1])
        return OnnxRuntimeSession(artifact.path, target.threads)


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

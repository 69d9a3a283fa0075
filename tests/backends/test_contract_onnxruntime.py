"""ONNX Runtime meets the backend contract (the reference backend)."""

from __future__ import annotations

from contract import BackendContract, Exported

from edgeprune.backends.onnxruntime_backend import OnnxRuntimeBackend
from edgeprune.target import load_target


class TestOnnxRuntime(BackendContract):
    backend = OnnxRuntimeBackend()
    target = load_target("cpu")
    suffixes = (".onnx",)
    atol = 1e-4  # measured max |diff| ~1e-6 on the tiny models

"""ONNX Runtime: ONNX files on its CPU execution provider, INT8 by its static QDQ quantizer, per-node times from
its profiler."""

from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend as BACKEND

__all__ = ["BACKEND"]

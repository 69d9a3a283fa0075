"""LiteRT (TensorFlow Lite): ``.tflite`` files converted by litert-torch and run by the interpreter with XNNPACK,
INT8 by ai-edge-quantizer, and XNNPACK's sparse path for 1x1 convolutions (``sparsity``, ``sparse_writer``)."""

from edgeprune.runtimes.litert.backend import LiteRtBackend as BACKEND

__all__ = ["BACKEND"]

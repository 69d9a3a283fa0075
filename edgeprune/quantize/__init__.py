"""Integer quantization of exported artifacts (``--precision int8``), each runtime with its own maintained tool.

ONNX Runtime: :mod:`edgeprune.runtimes.onnxruntime.int8` (static QDQ quantization with per-channel weights, by
``onnxruntime.quantization``). :mod:`edgeprune.quantize.backend` wraps a runtime backend so that every
candidate the closed loop exports is quantized before it is measured: the loop then closes on the INT8
artifact's measured latency, while the original it is paired with stays the float model the user has.
"""

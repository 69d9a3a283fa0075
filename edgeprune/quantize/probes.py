"""INT8 latency probes: a float probe (one layer, written as ONNX) quantized as the run's candidates are.

An INT8 run's latency table is built from quantized kernels, so its predictions carry what quantization
adds to each layer (the quantize/dequantize steps around it) as well as what it saves: at small widths that
overhead dominates, and a float table would predict INT8 candidates far too fast.
"""

from __future__ import annotations

import numpy as np

from edgeprune.runtimes.base import Artifact, Backend, Int8Request

#: calibration inputs per probe: random, since scales change what a kernel computes, not how long it takes
PROBE_CALIBRATION_IMAGES = 4


def quantize_probe(probe: Artifact, backend: Backend) -> Artifact:
    """The INT8 form of the float ONNX ``probe`` by ``backend``'s quantizer (a runtime that reads ONNX), in the
    runtime's format, written beside it under names that start with its stem."""
    stem = probe.path.with_name(probe.path.stem + "-int8")
    return backend.quantize_file(probe, stem, _random_inputs(probe.input_shape), Int8Request(probe.input_name))


def _random_inputs(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((PROBE_CALIBRATION_IMAGES, *shape[1:])).astype(np.float32)


def int8_probe_backend(backend: Backend, input_shape: tuple[int, ...]) -> Backend:
    """A backend whose exports of a probe taking ``input_shape`` are INT8 (for runtimes whose probes are exported
    from PyTorch, as LiteRT's are): the run's INT8 backend, calibrated on random probe-shaped inputs."""
    from edgeprune.quantize.backend import Int8Backend

    inner = getattr(backend, "inner", backend)
    return Int8Backend(inner, _random_inputs(input_shape))  # type: ignore[return-value]

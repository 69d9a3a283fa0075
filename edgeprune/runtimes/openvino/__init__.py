"""OpenVINO: IR files (read from ONNX) on the target's device at its precision hint, INT8 by NNCF, per-node times
from its performance counters; its usage telemetry kept off (``telemetry``)."""

from edgeprune.runtimes.openvino.backend import OpenVinoBackend as BACKEND

__all__ = ["BACKEND"]

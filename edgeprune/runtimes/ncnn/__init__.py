"""Tencent ncnn: PyTorch → ncnn ``.param``/``.bin`` via pnnx, run and timed by the ``ncnn`` Python bindings (no
torch on the device); per-layer times by running each layer alone on its real inputs (``profile``); no INT8 (its
quantizer tools are not installable from pip: ``int8``)."""

from edgeprune.runtimes.ncnn.backend import NcnnBackend as BACKEND

__all__ = ["BACKEND"]

"""ExecuTorch (PyTorch's edge runtime): ``.pte`` programs lowered to the XNNPACK delegate, INT8 by its XNNPACK
quantizer through PT2E, per-operator times from its event tracer (ETDump). Its Python runtime links libtorch, so
a device needs torch to run it under the agent (no torch-free extra)."""

from edgeprune.runtimes.executorch.backend import ExecuTorchBackend as BACKEND

__all__ = ["BACKEND"]

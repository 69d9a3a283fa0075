"""The interfaces every runtime backend implements (export on the workstation, run and time on the device).

A backend module imports its runtime lazily (inside methods), so ``import edgeprune`` works without the
optional runtimes; a missing runtime raises :class:`~edgeprune.errors.MissingRuntimeError` naming the extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

ARTIFACT_FORMATS = ("onnx", "openvino", "tflite")


@dataclass(frozen=True)
class Artifact:
    """A model file in a runtime's format.

    Attributes:
        path: the main file (``model.onnx``, ``model.xml`` with ``model.bin`` beside it, ``model.tflite``).
        format: one of :data:`ARTIFACT_FORMATS`.
        input_name: name of the single input tensor.
        input_shape: shape of that input, batch included (N, C, H, W), as the artifact expects it.
    """

    path: Path
    format: str
    input_name: str
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerTiming:
    """Time attributed by a runtime's own profiler to one executed (possibly fused) node.

    Attributes:
        name: the runtime's node name (ORT and OpenVINO keep the ONNX node path).
        op_type: the runtime's kernel or layer type (``"FusedConv"``, ``"Convolution"`` ...).
        ms: median time per inference in milliseconds.
    """

    name: str
    op_type: str
    ms: float


class Session(Protocol):
    """A loaded artifact, configured with the target's threads and precision."""

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference and return the outputs."""
        ...

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Measure the latency of one inference on ``inputs``."""
        ...

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Per-node times from the runtime's profiler; raises NotImplementedError where there is none."""
        ...


class Backend(Protocol):
    """A runtime that can turn a PyTorch model into an artifact and load artifacts into sessions."""

    name: ClassVar[str]
    #: artifact format this backend produces with :meth:`export`
    artifact_format: ClassVar[str]

    def available(self) -> bool:
        """Whether the runtime's Python package is installed."""
        ...

    def version(self) -> str:
        """The runtime's version string."""
        ...

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Write ``model`` as an artifact at ``out_path`` (suffix chosen by the backend)."""
        ...

    def load(self, artifact: Artifact, target: Target) -> Session:
        """Load an artifact for running and timing with the target's threads and precision."""
        ...

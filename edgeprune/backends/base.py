"""The interfaces every runtime backend implements (export on the workstation, run and time on the device)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from edgeprune.latency.timing import LatencyStats, TimingSpec
from edgeprune.target import Target


@dataclass(frozen=True)
class Artifact:
    """A model file in a runtime's format.

    Attributes:
        path: the main file (``model.onnx``, ``model.xml``, ``model.tflite``).
        format: ``"onnx"``, ``"openvino"`` or ``"tflite"``.
        input_name: name of the single input tensor.
        input_shape: shape of that input, batch included (N, C, H, W).
    """

    path: Path
    format: str
    input_name: str
    input_shape: tuple[int, ...]


class Session(Protocol):
    """A loaded artifact, configured with the target's threads and precision."""

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference and return the outputs."""
        ...

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Measure the latency of one inference on ``inputs``."""
        ...


class Backend(Protocol):
    """A runtime that can turn a PyTorch model into an artifact and load artifacts into sessions."""

    name: ClassVar[str]

    def available(self) -> bool:
        """Whether the runtime's Python package is installed."""
        ...

    def version(self) -> str:
        """The runtime's version string."""
        ...

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Write ``model`` as an artifact at ``out_path``."""
        ...

    def load(self, artifact: Artifact, target: Target) -> Session:
        """Load an artifact for running and timing with the target's settings."""
        ...

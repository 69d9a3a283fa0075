"""Export-and-measure of candidate models on the target, cached by architecture.

Each candidate is exported with the target's backend, loaded with the target's threads and precision,
and timed; the result is cached by the candidate's channel widths, so the search never measures the same
architecture twice in a round unless asked to confirm it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeprune.backends.base import Artifact, Backend
from edgeprune.latency.timers import ArtifactTimer, LocalTimer
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec

log = logging.getLogger(__name__)

SEARCH_TIMING = TimingSpec(warmup_runs=10, min_runs=50, min_seconds=1.0)
CONFIRM_TIMING = TimingSpec(warmup_runs=20, min_runs=100, min_seconds=2.0)


@dataclass(frozen=True)
class Measurement:
    """A measured artifact."""

    artifact: Artifact
    stats: LatencyStats


class CandidateMeasurer:
    """Exports candidates into ``work_dir`` and times them with ``backend`` on ``target``."""

    def __init__(self, backend: Backend, target: Target, example: torch.Tensor, work_dir: Path,
                 timer: ArtifactTimer | None = None) -> None:
        self.backend = backend
        self.target = target
        self.timer: ArtifactTimer = timer or LocalTimer(backend, target)
        self.example = example
        self.work_dir = work_dir
        self.exports = 0
        self._counter = 0

    def measure(self, model: nn.Module, name: str, spec: TimingSpec = SEARCH_TIMING,
                keep: Mapping[str, Sequence[int]] | None = None) -> Measurement:
        """Export ``model`` as ``name`` and measure it; the artifact stays in the work directory.

        ``keep`` (the channels the candidate keeps) is not needed to measure; latency models that predict
        instead of measuring (:class:`~edgeprune.latency.predicted.PredictedMeasurer`) use it.
        """
        return self.time(self.export(model, name), spec)

    def export(self, model: nn.Module, name: str) -> Artifact:
        """Export ``model`` into the work directory under a numbered ``name``."""
        self._counter += 1
        path = self.work_dir / f"{self._counter:03d}-{name}.onnx"
        artifact = self.backend.export(model, self.example, path, self.target)
        self.exports += 1
        return artifact

    def time(self, artifact: Artifact, spec: TimingSpec = CONFIRM_TIMING) -> Measurement:
        """Measure an existing artifact (locally or through the agent, as the timer says)."""
        stats = self.timer.time(artifact, spec)
        log.debug("%s: median %.3f ms (CV %.1f%%)", artifact.path.name, stats.median_ms, stats.cv * 100)
        return Measurement(artifact, stats)

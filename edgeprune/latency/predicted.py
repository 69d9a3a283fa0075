"""Predicted latency for targets edgeprune cannot reach: the shipped-profile path of ``fit``.

For a target whose ``latency_source`` is ``predicted-profile`` (``rpi4``, ``rpi5``, ``intel-npu``) and no
``--device`` agent, ``fit`` still runs end to end: the search and the closed loop use the analytic model of
the shipped profile (edgeprune/profiles/<name>.toml), artifacts are exported and evaluated for accuracy in
the target's runtime on this machine, and every latency in the report and on the terminal is labelled
"predicted (shipped profile)", never "measured". Connecting an agent replaces all of this with real
measurements.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from edgeprune.latency.analytic import AnalyticLatencyModel
from edgeprune.latency.candidates import ORIGINAL, SEARCH_TIMING, CandidateMeasurer, Measurement
from edgeprune.latency.layers import extract_layers
from edgeprune.latency.timers import ProfileTimer
from edgeprune.prune.groups import ChannelGroup
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec

log = logging.getLogger(__name__)

#: kinds of candidates whose artifact is used after measuring (evaluated, shipped); others are not exported
_EXPORTED_KINDS = ("original", "final")


def predicted_stats(ms: float) -> LatencyStats:
    """A prediction in the shape of a measurement summary (runs = 0 marks that nothing ran)."""
    return LatencyStats(median_ms=ms, p90_ms=ms, mean_ms=ms, min_ms=ms, cv=0.0, runs=0, noisy=False)


class PredictedMeasurer(CandidateMeasurer):
    """Answers "how fast is this candidate" from the shipped profile instead of a measurement."""

    def __init__(self, backend: Backend, target: Target, example: torch.Tensor, work_dir: Any,
                 timer: ProfileTimer, original_backend: Backend | None = None) -> None:
        super().__init__(backend, target, example, work_dir, timer, original_backend)
        self.profile_timer = timer
        self._models: dict[str, AnalyticLatencyModel] = {}

    @property
    def latency(self) -> AnalyticLatencyModel | None:
        """The analytic model of the candidates: the profile's INT8 estimate when they are quantized."""
        return self._models.get("int8" if self.quantizes else "original")

    def bind(self, model: nn.Module, groups: Sequence[ChannelGroup]) -> AnalyticLatencyModel:
        """Build the analytic model for ``model``'s kernels (call again after each pruning step)."""
        layers = extract_layers(model, self.example, list(groups))
        profile = self.profile_timer.profile
        self._models = {"original": AnalyticLatencyModel(layers, profile)}
        if self.quantizes:
            self._models["int8"] = AnalyticLatencyModel(layers, profile.at_precision("int8"))
        latency = self.latency
        assert latency is not None
        return latency

    def measure(self, model: nn.Module, name: str, spec: TimingSpec = SEARCH_TIMING,
                keep: Mapping[str, Sequence[int]] | None = None,
                check: Callable[[Artifact], object] | None = None) -> Measurement:
        if self.latency is None:
            raise RuntimeError("PredictedMeasurer.bind() must be called before measure()")
        model_of = self._models["original"] if name == ORIGINAL else self.latency
        ms = model_of.predict({g: len(k) for g, k in (keep or {}).items()})
        artifact = self.export(model, name) if name in _EXPORTED_KINDS else None
        if artifact is not None and check is not None:
            check(artifact)
        return Measurement(artifact, predicted_stats(ms))  # type: ignore[arg-type]

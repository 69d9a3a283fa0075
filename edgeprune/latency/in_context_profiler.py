"""Runs each calibration sample under the runtime's own profiler and turns it into in-context layer times.

The matching and the fit are :mod:`edgeprune.latency.in_context`; this module owns the runtime side: which runs
can be profiled here, the ONNX export whose labels name the nodes, and the profiled runs themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeprune.latency import in_context
from edgeprune.latency.in_context import NodeLayers
from edgeprune.latency.layers import Layer
from edgeprune.latency.predictor import LookupLatencyModel
from edgeprune.latency.profiler import fit_measured
from edgeprune.latency.timers import ArtifactTimer, LocalTimer
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.runtimes.onnx_export import export_onnx, is_onnx
from edgeprune.runtimes.onnx_labels import onnx_module_labels
from edgeprune.target import Target
from edgeprune.timing import TimingSpec

log = logging.getLogger(__name__)

#: profiled runs per sample (after warm-up); the per-node medians are what the fit reads
IN_CONTEXT_TIMING = TimingSpec(warmup_runs=5, min_runs=30)
#: fewest calibration samples worth profiling (each held out in turn, the rest fit the lines)
MIN_SAMPLES = 6
#: share of samples whose nodes must all match a layer for the lines to be fitted
MIN_MATCHED_SHARE = 0.75


class InContextProfiler:
    """Profiles calibration samples of one model on this machine's runtime (see :meth:`for_run`)."""

    def __init__(self, backend: Backend, target: Target, example: torch.Tensor, layers: Sequence[Layer],
                 matching: NodeLayers) -> None:
        self.backend, self.target, self.layers, self.matching = backend, target, list(layers), matching
        self.feed_array = np.ascontiguousarray(example.numpy(), dtype=np.float32)
        self.source = f"{backend.facts.title} profiler on the calibration samples"

    @classmethod
    def for_run(cls, model: nn.Module, example: torch.Tensor, layers: Sequence[Layer], backend: Backend,
                target: Target, timer: ArtifactTimer, work: Path, samples: int,
                onnx_export: Path | None = None) -> "InContextProfiler | None":
        """A profiler when this run can use one, else None: the runtime must read ONNX (its nodes keep the ONNX
        node names the exporter labelled) and have a per-node profiler, the samples must be timed here (an agent
        does not profile), the target float (a quantized file's nodes are renamed by the quantizer), and the
        calibration have at least :data:`MIN_SAMPLES` samples. ``onnx_export``: the model's own ONNX export, when
        the run has one (its labels name the nodes; else the model is exported once for them)."""
        facts = backend.facts
        if not (facts.reads_onnx and facts.profiler) or type(timer) is not LocalTimer or target.precision == "int8":
            return None
        if samples < MIN_SAMPLES:
            log.info("no in-context layer times: %d calibration samples, %d needed", samples, MIN_SAMPLES)
            return None
        try:
            labels = onnx_module_labels(onnx_export or export_onnx(model, example, work / "in-context-labels.onnx"))
        except Exception as exc:  # noqa: BLE001 - the probe timings still serve; say why they alone do
            log.info("no in-context layer times: the labelling export failed (%s)", exc)
            return None
        if not labels:
            log.info("no in-context layer times: the ONNX export has no module labels")
            return None
        return cls(backend, target, example, layers,
                   in_context.node_layers(labels, layers, in_context.norm_owners(model, example)))

    def layer_times(self, artifact: Artifact, measured_ms: float) -> dict[str, float] | None:
        """One sample's in-context ms per layer (None when its nodes did not all match a layer)."""
        try:
            session = self.backend.load(artifact, self.target)
            timings = session.profile_layers({artifact.input_name: self.feed_array}, IN_CONTEXT_TIMING)
        except NotImplementedError:
            return None
        matching = self.matching
        if is_onnx(artifact.format):  # the sample's own labels: the exporter numbers nodes anew when widths change
            labels = onnx_module_labels(artifact.path)  # the split of a YOLOv8 C2f block, for one
            if labels:
                matching = NodeLayers(labels, self.matching.layer_of_module)
        return in_context.layer_times([(t.name, float(t.ms)) for t in timings], matching, measured_ms, self.layers)

    def fit(self, lookup: LookupLatencyModel, samples: Sequence[Mapping[str, int]], measured_ms: Sequence[float],
            times: Sequence[Mapping[str, float] | None]) -> dict[str, list[float]]:
        """The per-signature lines from the profiled samples, where they predict better than the probes alone.

        Both are judged by leave-one-out over the calibration samples (each sample predicted by lines and a
        calibration fitted on the others), the way the calibration chooses its scales: on ONNX Runtime a lone
        probe runs much as the kernel does in the network, and the profiler's own per-node overhead can make the
        lines the worse predictor. ``{}`` when too few samples matched their layers or the probes win.
        """
        usable = [(widths, t) for widths, t in zip(samples, times) if t is not None]
        if len(usable) < MIN_MATCHED_SHARE * len(samples) or len(usable) < 3:
            log.info("no in-context layer times: %d of %d calibration samples matched their layers", len(usable),
                     len(samples))
            return {}
        lines = in_context.fit_lines(self.layers, usable)
        if not lines:
            return {}
        probes_error = held_out_error(lookup, samples, measured_ms, None, self.layers)
        lines_error = held_out_error(lookup, samples, measured_ms, times, self.layers)
        signatures = len({layer.signature.key() for layer in self.layers})
        self.source = (f"{self.backend.facts.title} profiler on the calibration samples (held-out error "
                       f"{100 * lines_error:.1f}% against {100 * probes_error:.1f}% for the probes alone)")
        if not lines_error < probes_error:
            log.info("in-context layer times not used: held-out error %.1f%% against %.1f%% for the probes alone",
                     100 * lines_error, 100 * probes_error)
            return {}
        log.info("in-context layer times from the %s: %d of %d kernel signatures", self.source, len(lines), signatures)
        return lines


def held_out_error(lookup: LookupLatencyModel, samples: Sequence[Mapping[str, int]], measured_ms: Sequence[float],
                   times: Sequence[Mapping[str, float] | None] | None, layers: Sequence[Layer]) -> float:
    """Mean relative error of each calibration sample predicted by a model fitted on the others: with in-context
    lines (fitted without it too) when ``times`` are given, else the probes alone."""
    errors = []
    for i, (widths, ms) in enumerate(zip(samples, measured_ms)):
        others = [j for j in range(len(samples)) if j != i]
        lines: dict[str, list[float]] = {}
        if times is not None:
            lines = in_context.fit_lines(layers, [(samples[j], times[j]) for j in others if times[j] is not None])
        calibration = fit_measured(lookup, [samples[j] for j in others], [measured_ms[j] for j in others],
                                   in_context=lines)
        sums = lookup.kind_sums(widths, lines)
        errors.append(abs(calibration.apply(sum(sums.values()), sums) - ms) / ms)
    return float(np.mean(errors)) if errors else float("inf")

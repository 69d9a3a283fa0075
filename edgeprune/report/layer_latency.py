"""Per-layer latency before and after pruning, for the report's ``per_layer_latency`` key and its plot.

Two sources, always labelled:

* :func:`per_layer_latency` runs each artifact under the runtime's own profiler (ONNX Runtime profiling,
  OpenVINO ``PERF_COUNT``) through :meth:`Session.profile_layers` and matches the executed nodes by name.
  Both artifacts come from the same export of the same architecture, and channel pruning changes widths,
  not the graph, so the runtime names its (fused) nodes identically in both. An INT8 artifact is the
  exception: the runtime fuses each quantized convolution under a new name (ONNX Runtime's
  ``node_Conv_7_token_3``), so nodes that do not pair by name pair by the PyTorch module each file's
  exporter metadata names. A node seen only before was removed or fused differently after; a node seen only
  after is listed under ``unmatched_after``.
* :func:`predicted_layer_latency` turns two :meth:`LookupLatencyModel.breakdown` dictionaries (per-layer
  milliseconds predicted from the latency table) into the same format.

The result::

    {"source": "measured (onnxruntime profiler)" | "predicted (latency table)", "unit": "ms",
     "layers": [{"name": str, "before_ms": float, "after_ms": float | None, ...}],   # slowest first
     "total_before_ms": float, "total_after_ms": float, "unmatched_after": [...], "note": str}

Profilers attribute time to nodes; they inflate small kernels and leave out the per-call overhead, so the
per-layer figures explain where time goes and need not add up to the measured median latency.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.runtimes.base import Artifact, LayerTiming
from edgeprune.runtimes.onnx_export import is_onnx
from edgeprune.runtimes.onnx_labels import label_of, onnx_module_labels
from edgeprune.target import Target
from edgeprune.timing import TimingSpec

log = logging.getLogger(__name__)

PREDICTED_SOURCE = "predicted (latency table)"
MEASURED_NOTE = ("per-node medians from the runtime's profiler: they attribute time to (fused) nodes, inflate "
                 "small kernels and leave out per-call overhead, so they need not sum to the measured latency")
PREDICTED_NOTE = "predicted from the profiled latency table (calibrated to whole-model measurements), not measured"


def measured_source(runtime: str) -> str:
    """The ``source`` label of profiler-measured per-layer times for ``runtime``."""
    return f"measured ({runtime} profiler)"


def per_layer_latency(
    backend: Any,
    target: Target,
    before_artifact: Artifact,
    after_artifact: Artifact,
    example_input: np.ndarray,
    spec: TimingSpec,
    labels_from: Path | None = None,
) -> dict[str, Any] | None:
    """Profile both artifacts with the runtime's own profiler and pair their nodes by name.

    Returns the ``per_layer_latency`` dictionary (source ``"measured (<runtime> profiler)"``), or ``None``
    when the runtime has no per-layer profiler (LiteRT, or an agent session: ``NotImplementedError``); the
    caller may then fall back to :func:`predicted_layer_latency`. Other errors (a runtime that cannot load
    the artifact) propagate.

    Layers get a ``"module"`` label (PyTorch module path) from the exporter's metadata in an ONNX file:
    ``labels_from`` if given (pass the original's ONNX export when the artifacts are OpenVINO IR, whose node
    names keep the ONNX node names), else the original artifact when it is ONNX.

    >>> plt = per_layer_latency(backend, target, original, pruned, x, TimingSpec(min_runs=50))  # doctest: +SKIP
    >>> plt["layers"][0]["before_ms"] >= plt["layers"][-1]["before_ms"]                          # doctest: +SKIP
    True
    """
    try:
        before = _profile(backend, target, before_artifact, example_input, spec)
        after = _profile(backend, target, after_artifact, example_input, spec)
    except NotImplementedError as exc:
        log.info("no per-layer profile from %s: %s", target.runtime, exc or "the runtime has no layer profiler")
        return None
    onnx_path = labels_from or (before_artifact.path if is_onnx(before_artifact.format) else None)
    labels = onnx_module_labels(onnx_path) if onnx_path is not None else {}
    labels_after = onnx_module_labels(after_artifact.path) if is_onnx(after_artifact.format) else labels
    return match_layer_timings(before, after, measured_source(target.runtime), labels, labels_after)


def _profile(backend: Any, target: Target, artifact: Artifact, example_input: np.ndarray,
             spec: TimingSpec) -> list[LayerTiming]:
    session = backend.load(artifact, target)
    feed = {artifact.input_name: np.ascontiguousarray(example_input, dtype=np.float32)}
    return list(session.profile_layers(feed, spec))


def _by_name(timings: Sequence[LayerTiming]) -> dict[str, tuple[str, float]]:
    """Name → (op type, ms); a name reported under several op types gets their sum."""
    merged: dict[str, tuple[str, float]] = {}
    for t in timings:
        op, ms = merged.get(t.name, (t.op_type, 0.0))
        merged[t.name] = (op, ms + float(t.ms))
    return merged


def match_layer_timings(
    before: Sequence[LayerTiming],
    after: Sequence[LayerTiming],
    source: str,
    labels: Mapping[str, str] | None = None,
    labels_after: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Pair two profiles into the ``per_layer_latency`` format (slowest-before first).

    Nodes pair by name; a node left unpaired pairs by module path when exactly one unpaired node on each side
    carries that module (``labels`` for the original's node names, ``labels_after`` for the other's, default
    ``labels``: see :func:`onnx_module_labels`). A layer with a label gets a ``"module"`` key.
    """
    labels = dict(labels or {})
    labels_after = dict(labels_after) if labels_after is not None else labels
    b, a = _by_name(before), _by_name(after)
    partner = {name: name for name in b if name in a}
    for module, (before_names, after_names) in _unpaired_by_module(b, a, partner, labels, labels_after).items():
        if len(before_names) == 1 and len(after_names) == 1:
            partner[before_names[0]] = after_names[0]
    layers = []
    for name, (op, ms) in b.items():
        entry: dict[str, Any] = {"name": name, "op_type": op, "before_ms": ms,
                                 "after_ms": a[partner[name]][1] if name in partner else None}
        if name in partner and partner[name] != name:
            entry["after_name"] = partner[name]
        label = label_of(labels, name)
        if label:
            entry["module"] = label
        layers.append(entry)
    layers.sort(key=lambda e: -e["before_ms"])
    paired_after = set(partner.values())
    unmatched = [{"name": n, "op_type": op, "after_ms": ms} for n, (op, ms) in a.items() if n not in paired_after]
    if unmatched:
        log.debug("%d node(s) of the pruned model have no counterpart in the original (fused differently)",
                  len(unmatched))
    return {
        "source": source,
        "unit": "ms",
        "layers": layers,
        "total_before_ms": float(sum(ms for _, ms in b.values())),
        "total_after_ms": float(sum(ms for _, ms in a.values())),
        "removed_or_fused": [e["name"] for e in layers if e["after_ms"] is None],
        "unmatched_after": unmatched,
        "note": MEASURED_NOTE,
    }


def _unpaired_by_module(before: Mapping[str, object], after: Mapping[str, object], partner: Mapping[str, str],
                        labels: Mapping[str, str], labels_after: Mapping[str, str]
                        ) -> dict[str, tuple[list[str], list[str]]]:
    """Module path → (unpaired node names before, unpaired node names after) for modules with both."""
    by_module: dict[str, tuple[list[str], list[str]]] = {}
    for name in before:
        module = label_of(labels, name)
        if name not in partner and module:
            by_module.setdefault(module, ([], []))[0].append(name)
    paired_after = set(partner.values())
    for name in after:
        module = label_of(labels_after, name)
        if name not in paired_after and module in by_module:
            by_module[module][1].append(name)
    return {m: names for m, names in by_module.items() if names[1]}


def predicted_layer_latency(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, Any]:
    """The ``per_layer_latency`` dictionary from two latency-model breakdowns (layer name → ms).

    Use ``LookupLatencyModel.breakdown(widths)`` with the original widths and with the pruned widths; its
    ``"(rest of the model)"`` entry (the calibration offset) is kept as a row of its own.

    >>> predicted_layer_latency({"conv1": 0.4, "fc": 0.1}, {"conv1": 0.2, "fc": 0.1})["layers"][0]
    {'name': 'conv1', 'before_ms': 0.4, 'after_ms': 0.2}
    """
    layers = [{"name": str(n), "before_ms": float(ms), "after_ms": float(after[n]) if n in after else None}
              for n, ms in before.items()]
    layers.sort(key=lambda e: -e["before_ms"])
    unmatched = [{"name": str(n), "after_ms": float(ms)} for n, ms in after.items() if n not in before]
    return {
        "source": PREDICTED_SOURCE,
        "unit": "ms",
        "layers": layers,
        "total_before_ms": float(sum(before.values())),
        "total_after_ms": float(sum(after.values())),
        "removed_or_fused": [e["name"] for e in layers if e["after_ms"] is None],
        "unmatched_after": unmatched,
        "note": PREDICTED_NOTE,
    }



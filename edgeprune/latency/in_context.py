"""In-context kernel times: what each layer costs inside the whole network, read from the runtime's own profiler.

A probe times one kernel alone, and a runtime does things around a lone kernel that it does not do in a network:
OpenVINO converts the probe's input and output between the plain and the blocked layout (two reorders per kernel,
where the network pays two in all), ONNX Runtime wraps it in ``ReorderInput``/``ReorderOutput``, and a kernel
alone runs with warm caches that it does not have between its neighbours. The calibration samples are whole
sub-networks measured end to end anyway; where the runtime has a per-node profiler (ONNX Runtime, OpenVINO) each
sample is also run under it and:

1. each profiled node is matched to its layer through the module path the exporter wrote into the ONNX file
   (:func:`edgeprune.runtimes.onnx_labels.onnx_module_labels`; a convolution exported with its batch norm folded
   in carries the batch norm's path, mapped back by :func:`norm_owners`); a fused activation or residual add
   counts with its convolution, and the runtime's own layout conversions go to no layer;
2. the sample's node times are scaled so that they sum to its paired measurement (the profiler's own overhead and
   a change of the machine's speed between timing and profiling cancel);
3. per kernel signature, over every layer of that signature in every sample, a least-squares line (in relative
   error) in the kernel's work is fitted (:data:`FEATURES`): ``ms = c0 + c1 * cin * cout + c2 * (cin + cout)``, or ``c0 + c1 * c`` for a
   depthwise kernel.

:class:`edgeprune.latency.predictor.LookupLatencyModel` then uses that line for every layer whose signature has
one and the probe table for the rest, and the whole-model calibration is fitted over the result, but only where
leave-one-out over the calibration samples says the lines predict better than the probes alone
(:meth:`edgeprune.latency.in_context_profiler.InContextProfiler.fit`). Measured on cifar-resnet56 (docs/benchmarks.md,
"Latency-model fidelity", 2026-12-07): on OpenVINO, whose lone probes pay two layout conversions each, the lines
put 88% of random variants' shares of the whole model within ±10% where the probes alone put 8%, on the same
readings; on ONNX Runtime, and for mobilenet_v2 on OpenVINO, the probes alone did as well or better.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeprune.latency.layers import Layer
from edgeprune.runtimes.onnx_labels import label_of

log = logging.getLogger(__name__)

#: what the coefficients of a per-signature line multiply (a depthwise kernel's line: ``1`` and its width ``c``)
FEATURES = ("1", "cin*cout", "cin+cout")
#: observations needed per coefficient before a signature's line is trusted over its probes
MIN_ROWS_PER_COEFFICIENT = 3


def features(layer: Layer, cin: int, cout: int) -> list[float]:
    """The regressors of a layer's in-context time at widths (cin, cout), as :data:`FEATURES` names them."""
    if layer.signature.diagonal:
        return [1.0, float(cout)]
    return [1.0, float(cin) * float(cout), float(cin + cout)]


def predict(coefficients: Sequence[float], layer: Layer, cin: int, cout: int) -> float:
    """A layer's in-context time (ms) from its signature's line; never negative."""
    return max(0.0, float(np.dot(coefficients, features(layer, cin, cout))))


def norm_owners(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """Batch norm module path → the convolution whose output it normalises (found by running the model once)."""
    made_by: dict[int, str] = {}
    owners: dict[str, str] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            def on_conv(_m: nn.Module, _a: tuple, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    made_by[id(out)] = name

            hooks.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            def on_norm(_m: nn.Module, args: tuple, _out: object, name: str = name) -> None:
                if args and isinstance(args[0], torch.Tensor) and id(args[0]) in made_by:
                    owners[name] = made_by[id(args[0])]

            hooks.append(module.register_forward_hook(on_norm))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return owners


@dataclass(frozen=True)
class NodeLayers:
    """Which layer each node a runtime's profiler reports belongs to."""

    labels: Mapping[str, str]  #: node or tensor name → module path (the exporter's metadata)
    layer_of_module: Mapping[str, str]  #: module path → layer name (a layer's own path, or its batch norm's)

    def layer(self, node_name: str) -> str | None:
        """The layer a profiled node belongs to, or None (a layout conversion, a pooling ...)."""
        module = label_of(self.labels, node_name)
        return self.layer_of_module.get(module) if module is not None else None


def node_layers(labels: Mapping[str, str], layers: Sequence[Layer], owners: Mapping[str, str]) -> NodeLayers:
    """The node → layer matching for a model whose ONNX labels are ``labels``."""
    names = {layer.name for layer in layers}
    layer_of_module = {name: name for name in names}
    layer_of_module.update({norm: conv for norm, conv in owners.items() if conv in names})
    return NodeLayers(dict(labels), layer_of_module)


def layer_times(timings: Sequence[tuple[str, float]], matching: NodeLayers, measured_ms: float,
                layers: Sequence[Layer]) -> dict[str, float] | None:
    """Each layer's in-context ms in one profiled sample: its nodes' share of all node time, times the sample's
    measured ms. None when some layer got no node (the runtime removed or renamed it: that sample is not used)."""
    total = sum(ms for _, ms in timings)
    if total <= 0:
        return None
    per_layer: dict[str, float] = {}
    for name, ms in timings:
        layer = matching.layer(name)
        if layer is not None:
            per_layer[layer] = per_layer.get(layer, 0.0) + ms
    missing = [layer.name for layer in layers if layer.name not in per_layer]
    if missing:
        log.debug("in-context profile: no node of %d layer(s), e.g. %s", len(missing), missing[0])
        return None
    return {name: ms / total * measured_ms for name, ms in per_layer.items()}


def fit_lines(layers: Sequence[Layer], samples: Sequence[tuple[Mapping[str, int], Mapping[str, float]]]
              ) -> dict[str, list[float]]:
    """Per signature key, the least-squares line of in-context ms in :func:`features`.

    ``samples`` are (group widths, per-layer in-context ms) pairs. A signature gets a line only with at least
    :data:`MIN_ROWS_PER_COEFFICIENT` observations per coefficient and a range of widths to fit (else its layers
    keep their probe timings).
    """
    by_signature: dict[str, list[Layer]] = {}
    for layer in layers:
        by_signature.setdefault(layer.signature.key(), []).append(layer)
    lines: dict[str, list[float]] = {}
    for key, members in by_signature.items():
        rows: list[list[float]] = []
        values: list[float] = []
        for widths, times in samples:
            for layer in members:
                if layer.name in times:
                    rows.append(features(layer, *layer.widths(widths)))
                    values.append(times[layer.name])
        x, y = np.array(rows, dtype=float), np.array(values, dtype=float)
        if x.size == 0 or len(y) < MIN_ROWS_PER_COEFFICIENT * x.shape[1]:
            continue
        varying = np.ptp(x, axis=0) > 0
        varying[0] = True  # the constant
        if varying.sum() < 2:
            continue  # the widths never moved: no line to fit
        scale = np.abs(x[:, varying]).max(axis=0)
        # in relative error: a thin variant's kernels weigh as much as a wide one's (absolute least squares would
        # fit the widest samples and leave the narrow ones to the constant)
        weight = 1.0 / np.maximum(y, 1e-6)
        solved = np.linalg.lstsq(x[:, varying] / scale * weight[:, None], y * weight, rcond=None)[0] / scale
        coefficients = np.zeros(x.shape[1])
        coefficients[varying] = solved
        lines[key] = [float(c) for c in coefficients]
    return lines

"""Per-layer times for an ncnn model, measured by running each layer alone on its real inputs.

The ``ncnn`` wheel is built without ``NCNN_BENCHMARK`` (the build option that prints each layer's time), so
there is no per-layer profiler to read. Instead one inference is run with every blob kept, each blob in the
layout the next layer reads (packed, fp32); then, for each layer in file order, a fresh extractor is given the
layer's input blobs and asked for its first output, which makes ncnn run that one layer and nothing else. That
call is timed by :func:`edgeprune.timing.measure_latency`, and the same call without the layer (asking back an
input blob: the extractor's creation and the inputs' setting) is subtracted.

Differences from the layer's time inside a whole inference: an in-place layer (ReLU, a BinaryOp with a
constant ...) copies its input first, since the caller still holds it; its input is warm in cache; a layer's
output layout conversion (when the next layer wants another packing) is charged to the layer that needs it, as
in a real run. The sum of the layers is checked against the whole inference in the tests (within 25%; about
+6% measured on mobilenet_v2 at 64 px, +7% on a 3-conv CNN at 32 px).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgeprune.errors import InputError
from edgeprune.runtimes.base import LayerTiming
from edgeprune.runtimes.ncnn.param import ParamFile
from edgeprune.timing import TimingSpec, measure_latency

#: the longest a single layer (and each overhead reference) is timed; the spec's run counts still apply
LAYER_SECONDS = 0.02
_RAW = 1  # Extractor.extract type: keep the blob's packing and storage as the next layer reads it


def profile_layers(net: Any, graph: ParamFile, input_name: str, mat: Any, spec: TimingSpec) -> list[LayerTiming]:
    """Median time of each layer of ``net`` (``graph`` is its parsed ``.param``), on the input ``mat``."""
    blobs = _all_blobs(net, graph, input_name, mat)
    layer_spec = dataclasses.replace(spec, min_seconds=min(spec.min_seconds, LAYER_SECONDS), retries=0,
                                     warn_noisy=False)
    overhead: dict[int, float] = {}
    timings = []
    for layer in graph.layers:
        if layer.type == "Input" or not layer.tops:
            continue
        feeds = [(name, blobs[name]) for name in layer.bottoms]
        if len(feeds) not in overhead:
            reference = feeds[0][0] if feeds else None
            overhead[len(feeds)] = measure_latency(_call(net, feeds, reference), layer_spec).median_ms if feeds \
                else 0.0
        median = measure_latency(_call(net, feeds, layer.tops[0]), layer_spec).median_ms
        timings.append(LayerTiming(layer.name, layer.type, max(0.0, median - overhead[len(feeds)])))
    return timings


def _all_blobs(net: Any, graph: ParamFile, input_name: str, mat: Any) -> dict[str, Any]:
    """Every blob of one inference, kept in its raw layout."""
    extractor = net.create_extractor()
    extractor.set_light_mode(False)  # keep every intermediate blob
    extractor.input(input_name, mat)
    blobs = {input_name: mat}
    for layer in graph.layers:
        for top in layer.tops:
            if top in blobs:
                continue
            status, blob = extractor.extract(top, _RAW)
            if status != 0:
                raise InputError(f"ncnn failed computing blob '{top}' of layer '{layer.name}' (status {status})")
            blobs[top] = blob
    return blobs


def _call(net: Any, feeds: list[tuple[str, Any]], wanted: str | None) -> Any:
    """One fresh extractor given ``feeds``, asked for ``wanted``."""

    def call() -> None:
        extractor = net.create_extractor()
        for name, blob in feeds:
            extractor.input(name, blob)
        if wanted is not None:
            extractor.extract(wanted, _RAW)

    return call

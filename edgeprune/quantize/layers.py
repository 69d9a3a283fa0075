"""The precision each compute layer of an exported artifact runs at, read from the file itself.

Whoever quantized the file (edgeprune or another tool), its compute layers (convolutions, matrix products) are
listed with the precision of their weights and of their input activations, by the format's runtime
(``layers`` in each runtime's folder says how it reads its files).

A layer is ``int8`` when both are integer, ``int8 weights`` when only its weights are, else the float type (a
layer left in float by mixed precision may still read an input dequantized from int8: it computes in float).
"""

from __future__ import annotations

from pathlib import Path

from edgeprune.runtimes import backend_for_format
from edgeprune.runtimes.base import LayerPrecision

__all__ = ["LayerPrecision", "layer_precisions", "summarise"]


def layer_precisions(path: Path, fmt: str) -> list[LayerPrecision]:
    """The compute layers of the artifact at ``path`` (format ``fmt``), in graph order."""
    return backend_for_format(fmt).layer_precisions(Path(path))


def summarise(layers: list[LayerPrecision]) -> dict[str, int]:
    """How many layers run at each precision, e.g. ``{"int8": 55, "fp32": 2}``."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.precision] = counts.get(layer.precision, 0) + 1
    return counts

"""A model with many distinct kernels gets fewer widths per layer side, so its latency table stays bounded."""

from __future__ import annotations

import torch
from model_helpers import conv_stack

from edgeprune.latency.layers import extract_layers
from edgeprune.latency.profiler import MIN_POINTS, bounded_grids, distinct_probes, layer_grids
from edgeprune.prune.graph import ModelGraph


def test_the_grid_shrinks_until_the_probes_fit_the_bound_and_never_below_three_widths() -> None:
    model = conv_stack(4, 64)
    x = torch.randn(1, 3, 16, 16)
    layers = extract_layers(model, x, ModelGraph(model, x, warn_frozen=False).groups)
    full = distinct_probes(layer_grids(layers, 8, 6))
    assert distinct_probes(bounded_grids(layers, 8, 6, max_probes=full)) == full  # within the bound: unchanged
    bounded = bounded_grids(layers, 8, 6, max_probes=full // 2)
    assert distinct_probes(bounded) <= full // 2
    tight = bounded_grids(layers, 8, 6, max_probes=1)
    assert tight == layer_grids(layers, 8, MIN_POINTS)  # no fewer than three widths a side, whatever the bound

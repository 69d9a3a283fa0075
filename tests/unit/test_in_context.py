"""In-context layer times: node → layer matching, per-sample scaling, the per-signature line, and the lookup model
using it (the runtime side, a real profiler on a real export, is tests/latency/test_in_context_profiler.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeprune.latency import in_context
from edgeprune.latency.in_context_profiler import held_out_error
from edgeprune.latency.layers import Layer, LayerSignature, extract_layers
from edgeprune.latency.predictor import LookupLatencyModel
from edgeprune.latency.profiler import fit_measured, layer_grids, sample_widths
from edgeprune.latency.table import Calibration, LatencyTable, TableContext
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.prune.graph import ModelGraph

SIG = LayerSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), 16, 16, False)
DW = LayerSignature("dwconv", (3, 3), (1, 1), (1, 1), (1, 1), 16, 16, False)


def _layer(name: str, sig: LayerSignature = SIG) -> Layer:
    return Layer(name, sig, 32, 32, (("a", 32),), (("b", 32),))


def _resnet8_lookup() -> tuple[ModelGraph, list[Layer], LookupLatencyModel]:
    """A CIFAR ResNet-8, its layers and a lookup model on made-up probes (time ∝ cin × cout)."""
    model = CifarResNet(depth=8).eval()
    example = torch.zeros(1, 3, 32, 32)
    graph = ModelGraph(model, example)
    layers = extract_layers(model, example, graph.groups)
    table = LatencyTable(TableContext("openvino", "1.0", "cpu", 1, "fp32", "test machine"))
    grids = layer_grids(layers, 8, 3)
    for grid in grids:
        for cin, cout in grid.probes():
            table.put(grid.layer.signature, cin, cout, 1e-4 * cin * cout / 16)
    return graph, layers, LookupLatencyModel(grids, table)


def test_norm_owners_maps_each_batch_norm_to_the_conv_it_follows() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4))
    assert in_context.norm_owners(model.eval(), torch.zeros(1, 3, 8, 8)) == {"1": "0", "4": "3"}


def test_layer_times_scale_node_shares_to_the_measured_latency_and_skip_unlabelled_nodes() -> None:
    layers = [_layer("conv1"), _layer("conv2")]
    matching = in_context.node_layers({"node_Conv_1": "conv1", "node_Conv_2": "bn2", "relu_2": "bn2"}, layers,
                                      {"bn2": "conv2"})
    timings = [("input_reorder", 0.5), ("node_Conv_1", 1.0), ("node_Conv_2", 2.0), ("relu_2", 0.5)]
    times = in_context.layer_times(timings, matching, measured_ms=8.0, layers=layers)
    assert times == pytest.approx({"conv1": 2.0, "conv2": 5.0})  # 4 ms of nodes → 8 ms measured; the reorder is rest
    assert in_context.layer_times(timings[:2], matching, 8.0, layers) is None  # conv2 got no node


def test_fit_lines_recovers_the_line_and_skips_signatures_it_cannot_fit() -> None:
    dense, depthwise, fixed = _layer("c"), _layer("d", DW), _layer("f", LayerSignature(
        "conv", (1, 1), (1, 1), (0, 0), (1, 1), 8, 8, False))
    fixed = Layer("f", fixed.signature, 16, 16, (), ())  # no group: its widths never move

    def truth(layer: Layer, widths: dict[str, int]) -> float:
        cin, cout = layer.widths(widths)
        return 0.01 + 2e-5 * cin * cout + 1e-4 * (cin + cout) if layer is dense else 0.02 + 3e-4 * cout

    samples = []
    for a, b in [(8, 8), (8, 32), (16, 24), (32, 8), (24, 16), (32, 32), (16, 8), (8, 16), (24, 32), (32, 24)]:
        widths = {"a": a, "b": b}
        samples.append((widths, {l.name: truth(l, widths) if l is not fixed else 0.3 for l in (dense, depthwise, fixed)}))
    lines = in_context.fit_lines([dense, depthwise, fixed], samples)
    assert lines[SIG.key()] == pytest.approx([0.01, 2e-5, 1e-4], rel=1e-6, abs=1e-9)
    assert lines[DW.key()] == pytest.approx([0.02, 3e-4], rel=1e-6, abs=1e-9)
    assert fixed.signature.key() not in lines
    assert in_context.fit_lines([dense], samples[:5]) == {}  # 5 rows for 3 coefficients: too few


def test_the_lookup_model_takes_the_in_context_line_over_the_probes() -> None:
    graph, layers, lookup = _resnet8_lookup()
    groups = graph.prunable_groups()
    samples = sample_widths(groups, 8, 6, 0)
    sig = layers[1].signature.key()
    lines = {sig: [0.5, 0.0, 0.0]}  # every layer of that signature: 0.5 ms whatever its widths
    measured = [sum(ms for name, ms in lookup.kernel_times(w).items() if name not in {l.name for l in layers
                if l.signature.key() == sig}) + 0.5 * sum(l.signature.key() == sig for l in layers) for w in samples]
    calibration = fit_measured(lookup, samples, measured, in_context=lines, in_context_source="test")
    assert calibration.in_context == lines and calibration.in_context_source == "test"
    lookup.calibration = calibration
    times = lookup.kernel_times(samples[1])
    assert all(times[l.name] == 0.5 for l in layers if l.signature.key() == sig)
    assert all(lookup.predict(w) == pytest.approx(m, rel=1e-6) for w, m in zip(samples, measured))


def test_a_calibration_with_lines_round_trips_through_the_table(tmp_path) -> None:
    table = LatencyTable(TableContext("openvino", "1.0", "cpu", 1, "fp32", "m"), tmp_path / "t.json")
    table.calibrations["k"] = Calibration(1.0, 0.0, in_context={SIG.key(): [0.1, 1e-5, 2e-4]},
                                          in_context_source="OpenVINO profiler")
    table.save()
    loaded = LatencyTable.load(tmp_path / "t.json").calibrations["k"]
    assert loaded.in_context == {SIG.key(): [0.1, 1e-5, 2e-4]} and loaded.in_context_source == "OpenVINO profiler"


def test_held_out_error_prefers_whichever_predicts_unseen_samples() -> None:
    graph, layers, lookup = _resnet8_lookup()
    samples = sample_widths(graph.prunable_groups(), 8, 12, 3)

    def truth(layer: Layer, widths: dict[str, int]) -> float:  # in the network: a line unlike the lone probes
        cin, cout = layer.widths(widths)
        return 0.002 + 1e-3 * (cin + cout)  # memory-bound: it follows the widths, not their product

    times = [{l.name: truth(l, w) for l in layers} for w in samples]
    in_network = [sum(t.values()) + 0.1 for t in times]
    assert held_out_error(lookup, samples, in_network, times, layers) < 0.01
    assert held_out_error(lookup, samples, in_network, None, layers) > 0.02
    # where the whole model follows the probes, the same profiled times lose to them
    as_probed = [lookup.kernel_sum(w) for w in samples]
    assert held_out_error(lookup, samples, as_probed, None, layers) < 1e-6
    assert held_out_error(lookup, samples, as_probed, times, layers) > 0.01
    assert lookup.calibration is None  # left as it was

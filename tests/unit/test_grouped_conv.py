"""Grouped convolutions (ResNeXt, RegNet) are pruned in whole groups (edgeprune.prune.grouped_conv).

The channels feeding a grouped convolution and the channels it produces form one group cut in runs of the
block size; removing a run removes one of the convolution's groups, and the pruned model computes exactly
what the original computes once the removed blocks' contributions to the next layer are zeroed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.fit.loop.width_search import latency_budgeted_widths
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy
from edgeprune.prune.trial import freeze_untrimmable
from edgeprune.prune.uniform import uniform_keep


class _Bottleneck(nn.Module):
    """A ResNeXt bottleneck: 1x1 reduce, 3x3 grouped (4 groups of 6 channels), 1x1 expand, residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.reduce = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.grouped = nn.Sequential(nn.Conv2d(24, 24, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(24),
                                     nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(24, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.expand(self.grouped(self.reduce(x))))
        return self.head(x.mean(dim=(2, 3)))


def _model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = _Bottleneck().eval()
    for m in model.modules():  # non-trivial batch-norm statistics, so that a wrong channel would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model, torch.randn(2, 3, 8, 8)


def _the_grouped_group(graph: ModelGraph):  # type: ignore[no-untyped-def]
    return next(g for g in graph.groups if "grouped.0" in g.module_names)


def test_the_channels_around_a_grouped_convolution_form_one_group_cut_in_blocks() -> None:
    model, x = _model()
    group = _the_grouped_group(ModelGraph(model, x, warn_frozen=False))
    assert group.prunable and group.width == 24 and group.unit == 6
    modules = {(m.module, m.dim) for m in group.members}
    assert {("reduce.0", "out"), ("grouped.0", "in"), ("grouped.0", "out"), ("expand.0", "in")} <= modules
    conv_in = next(m for m in group.members if (m.module, m.dim) == ("grouped.0", "in"))
    assert [i // 6 for i in conv_in.indices] == [c // 6 for c in range(24)]  # each run is one block


@pytest.mark.parametrize("blocks", [[0, 2], [1], [0, 1, 3]])
def test_removing_whole_groups_equals_zeroing_their_contribution(blocks: list[int]) -> None:
    model, x = _model()
    graph = ModelGraph(model, x, warn_frozen=False)
    group = _the_grouped_group(graph)
    keep = [c for c in range(24) if c // 6 in blocks]
    slim = slim_copy(model, x, {group.name: keep})
    conv = slim.grouped[0]
    assert (conv.groups, conv.in_channels, conv.out_channels) == (len(blocks), 6 * len(blocks), 6 * len(blocks))
    assert tuple(conv.weight.shape) == (6 * len(blocks), 6, 3, 3)
    conv_in = next(m for m in group.members if (m.module, m.dim) == ("grouped.0", "in"))
    removed = [conv_in.indices[c] for c in range(24) if c not in keep]
    masked = model
    with torch.no_grad():
        masked.expand[0].weight[:, removed] = 0  # the removed blocks no longer reach the next layer
        assert torch.allclose(slim(x), masked(x), atol=1e-5)


def test_a_keep_that_splits_a_block_is_refused() -> None:
    model, x = _model()
    graph = ModelGraph(model, x, warn_frozen=False)
    group = _the_grouped_group(graph)
    with pytest.raises(ValueError, match="whole runs of 6"):
        graph.remove_channels({group.name: list(range(20))})


def test_the_search_and_the_uniform_ratio_keep_whole_blocks() -> None:
    model, x = _model()
    graph = ModelGraph(model, x, warn_frozen=False)
    groups = graph.prunable_groups()
    group = _the_grouped_group(graph)
    rng = np.random.default_rng(0)
    scores = {g.name: rng.random(g.width) for g in groups}

    class PerChannel:
        def predict(self, widths):  # type: ignore[no-untyped-def]
            return float(sum(widths.values()))

        def breakdown(self, widths):  # type: ignore[no-untyped-def]
            return dict(widths)

    full = sum(g.width for g in groups)
    result = latency_budgeted_widths(groups, scores, PerChannel(), full * 0.6, alignment=4)
    kept = result.keep[group.name]
    assert len(kept) % 12 == 0 and len(kept) < 24  # lcm(alignment 4, block 6)
    assert all({c // 6 * 6 + k for k in range(6)} <= set(kept) for c in kept)
    uniform = uniform_keep(groups, scores, 0.5, alignment=1)[group.name]
    assert len(uniform) == 12 and all({c // 6 * 6 + k for k in range(6)} <= set(uniform) for c in uniform)
    slim_copy(model, x, {group.name: kept})(x)


def test_the_trial_cut_removes_a_whole_block() -> None:
    model, x = _model()
    graph = ModelGraph(model, x, warn_frozen=False)
    assert freeze_untrimmable(model, x, graph) == []
    assert _the_grouped_group(graph).prunable


def test_the_latency_model_probes_grouped_kernels_in_whole_groups() -> None:
    from onnx import numpy_helper

    from edgeprune.latency.layers import extract_layers
    from edgeprune.latency.probes import probe_onnx
    from edgeprune.latency.profiler import layer_grids

    model, x = _model()
    graph = ModelGraph(model, x, warn_frozen=False)
    layers = {layer.name: layer for layer in extract_layers(model, x[:1], graph.groups)}
    sig = layers["grouped.0"].signature
    assert (sig.kind, sig.groups, sig.conv_groups(24), sig.conv_groups(12)) == ("gconv", 6, 4, 2)
    grid = next(g for g in layer_grids(list(layers.values()), alignment=4, max_points=8) if g.layer.name == "grouped.0")
    assert list(grid.cins) == list(grid.couts) == [12, 24]  # multiples of lcm(4, 6)
    assert grid.probes() == [(12, 12), (24, 24)]  # the same channels on both sides: only equal widths
    weights = {t.name: numpy_helper.to_array(t) for t in probe_onnx(sig, 12, 12).graph.initializer}
    assert weights["W"].shape == (12, 6, 3, 3)  # two groups of six channels


def test_every_probe_of_a_grouped_model_runs_in_onnx_runtime() -> None:
    import onnxruntime as ort

    from edgeprune.latency.layers import extract_layers
    from edgeprune.latency.probes import PROBE_INPUT, probe_input_shape, probe_onnx
    from edgeprune.latency.profiler import layer_grids

    model, x = _model()
    graph = ModelGraph(model, x, warn_frozen=False)
    grids = layer_grids(extract_layers(model, x[:1], graph.groups), alignment=2, max_points=4)
    probes = {(g.layer.signature, cin, cout) for g in grids for cin, cout in g.probes()}
    assert any(sig.kind == "gconv" for sig, _, _ in probes)
    for sig, cin, cout in sorted(probes, key=lambda p: (p[0].key(), p[1], p[2])):
        session = ort.InferenceSession(probe_onnx(sig, cin, cout).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        session.run(None, {PROBE_INPUT: np.zeros(probe_input_shape(sig, cin), dtype=np.float32)})

"""Concatenation, depthwise and grouped convolutions prune to valid, physically smaller models whose ONNX
exports carry the new widths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from model_helpers import ConcatNet
from torch import nn

from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.target import load_target


class SeparableNet(nn.Module):
    """Pointwise expand, depthwise 3x3, grouped 3x3 (4 groups), pointwise project (MobileNet/ResNeXt-like)."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(3, 32, 1), nn.BatchNorm2d(32), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.BatchNorm2d(32), nn.ReLU6())
        self.grouped = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.BatchNorm2d(32), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(32, 16, 1), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.project(self.grouped(self.dw(self.expand(x)))).mean(dim=(2, 3)))


@pytest.mark.parametrize("factory", [ConcatNet, SeparableNet], ids=["concat", "depthwise+grouped"])
def test_topology_prunes_to_a_smaller_valid_model_with_matching_onnx(factory: type, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(1, 3, 16, 16)
    graph = ModelGraph(model, x)
    groups = graph.prunable_groups()
    assert groups, "nothing prunable"
    # Keep every other channel; every other run of channels where a grouped conv's groups go whole.
    keep = {g.name: [c for c in range(g.width) if (c // g.unit) % 2 == 0] for g in groups}
    slim = slim_copy(model, x, keep)
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        out = slim(x)
    assert out.shape == (1, 5) and torch.isfinite(out).all()
    artifact = OnnxRuntimeBackend().export(slim, x, tmp_path / "slim.onnx", load_target("cpu"))
    initializers = {tuple(t.dims) for t in onnx.load(str(artifact.path)).graph.initializer if len(t.dims) == 4}
    for m in slim.modules():
        if isinstance(m, nn.Conv2d):
            assert tuple(m.weight.shape) in initializers  # the exported graph carries the new widths
            if m.groups > 1 and m.groups == m.out_channels:
                assert m.in_channels == m.out_channels  # depthwise stays depthwise
    if factory is SeparableNet:  # the grouped conv lost half of its groups, each still 8 channels wide
        assert (slim.grouped[0].groups, slim.grouped[0].in_channels, slim.grouped[0].out_channels) == (2, 16, 16)
    session = OnnxRuntimeBackend().load(artifact, load_target("cpu"))
    assert np.abs(session.run({artifact.input_name: x.numpy()})[0] - out.numpy()).max() < 1e-4

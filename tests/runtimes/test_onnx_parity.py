"""ONNX export of pruned residual models: ONNX Runtime output matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.models.demo import DemoNet
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.importance import ScoringContext, get_importance
from edgeprune.prune.surgery import slim_copy
from edgeprune.prune.uniform import uniform_keep
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec


def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics so that parity is tested on realistic activations."""
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)


def _pruned(model: torch.nn.Module, example: torch.Tensor, ratio: float) -> torch.nn.Module:
    model.eval()
    graph = ModelGraph(model, example)
    l1 = get_importance("l1")
    ctx = ScoringContext(model)
    scores = {g.name: l1.score(g, ctx) for g in graph.prunable_groups()}
    return slim_copy(model, example, uniform_keep(graph.prunable_groups(), scores, ratio, alignment=1))


@pytest.mark.parametrize(
    ("factory", "shape"),
    [(lambda: CifarResNet(20), (1, 3, 32, 32)), (lambda: DemoNet(width=16), (1, 1, 32, 32))],
    ids=["cifar-resnet20-option-A", "residual-with-projections"],
)
def test_pruned_residual_model_matches_pytorch_in_onnxruntime(factory, shape, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = factory()
    _randomise_bn(model)
    example = torch.randn(*shape)
    slim = _pruned(model, example, 0.4)
    params_before = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in slim.parameters()) < params_before
    backend = OnnxRuntimeBackend()
    target = load_target("cpu")
    artifact = backend.export(slim, example, tmp_path / "slim.onnx", target)
    session = backend.load(artifact, target)
    for seed in range(3):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = slim(x).numpy()
        produced = session.run({artifact.input_name: x.numpy()})[0]
        assert np.abs(produced - expected).max() <= 1e-4
    stats = session.time({artifact.input_name: example.numpy()}, TimingSpec(min_runs=20, min_seconds=0.1))
    assert stats.runs >= 20 and 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms


def test_exported_onnx_carries_the_pruned_widths(tmp_path: Path) -> None:
    import onnx

    torch.manual_seed(0)
    model = CifarResNet(20)
    example = torch.randn(1, 3, 32, 32)
    slim = _pruned(model, example, 0.5)
    OnnxRuntimeBackend().export(slim, example, tmp_path / "m.onnx", load_target("cpu"))
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    weight_shapes = {tuple(t.dims) for t in graph.initializer if len(t.dims) == 4}
    slim_shapes = {tuple(m.weight.shape) for m in slim.modules() if isinstance(m, torch.nn.Conv2d)}
    assert slim_shapes <= weight_shapes
    assert (8, 8, 3, 3) in weight_shapes  # layer1 convs: 16-wide stream and block channels halved
    assert not any(s[0] == 64 for s in weight_shapes)  # no 64-wide layer survives

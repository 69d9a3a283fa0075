"""Channel removal is exact: removing channels that carry only zeros leaves the model's function unchanged.

This checks the dependency graph end to end, including the option-A zero-padding shortcut of CIFAR ResNets
whose residual stream edgeprune couples across stages through the padding offset.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.models.demo import DemoNet
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy


def _randomise_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.2
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


def _silence_removed_channels(model: nn.Module, graph: ModelGraph, keep: dict[str, list[int]]) -> None:
    """Make every channel that will be removed identically zero (BN scale and shift set to 0)."""
    modules = dict(model.named_modules())
    for group in graph.prunable_groups():
        removed = [c for c in range(group.width) if c not in keep[group.name]]
        for member in group.members:
            module = modules[member.module]
            if member.dim == "out" and isinstance(module, nn.BatchNorm2d):
                for c in removed:
                    module.weight.data[member.indices[c]] = 0.0
                    module.bias.data[member.indices[c]] = 0.0


def _check_exact(model: nn.Module, shape: tuple[int, ...], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    _randomise_bn(model)
    model.eval()
    x = torch.randn(*shape)
    graph = ModelGraph(model, x)
    rng = random.Random(seed)
    keep = {g.name: sorted(rng.sample(range(g.width), max(1, g.width // 2))) for g in graph.prunable_groups()}
    _silence_removed_channels(model, graph, keep)
    slim = slim_copy(model, x, keep)
    with torch.no_grad():
        expected, produced = model(x), slim(x)
    assert torch.allclose(expected, produced, atol=1e-5), (expected - produced).abs().max()
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in model.parameters())
    return slim


def test_cifar_resnet_residual_stream_is_prunable_through_the_zero_padding_shortcut() -> None:
    model = CifarResNet(20)
    graph = ModelGraph(model, torch.randn(1, 3, 32, 32))
    prunable = {g.name: g.width for g in graph.prunable_groups()}
    # 9 block-internal groups plus the stream: stage-1 channels (16, carried into stages 2 and 3) and the
    # channels that stages 2 and 3 add (16 and 32).
    assert len(prunable) == 12
    assert prunable["conv1"] == 16
    assert sorted(prunable.values()) == [16, 16, 16, 16, 16, 32, 32, 32, 32, 64, 64, 64]
    frozen = [g.name for g in graph.groups if not g.prunable]
    assert frozen == ["linear"]


def test_removing_zero_channels_from_cifar_resnet_is_exact() -> None:
    slim = _check_exact(CifarResNet(20), (2, 3, 32, 32), seed=0)
    shortcuts = [m for m in slim.modules() if type(m).__name__ == "ZeroPadShortcut"]
    assert all(0 <= s.pad_front <= s.out_channels - s.in_channels for s in shortcuts)
    assert shortcuts[0].in_channels == 8  # stage-1 stream halved


def test_removing_zero_channels_from_a_projection_residual_model_is_exact() -> None:
    _check_exact(DemoNet(width=16), (2, 1, 32, 32), seed=3)

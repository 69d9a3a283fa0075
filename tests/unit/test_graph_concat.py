"""Channels that reach a layer through a channel concatenation stay prunable (Inception joins, DenseNet,
SqueezeNet's fire modules): the layer after the concatenation loses the matching slice of its inputs.

Each pruned model must compute exactly what the original computes with the removed channels' contributions
zeroed, whichever branches lose channels (Torch-Pruning shifts the concatenation's offsets as it goes)."""

from __future__ import annotations

import torch
from model_helpers import ConcatNet
from torch import nn

from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy


class _Dense(nn.Module):
    """Two DenseNet layers: each normalises the concatenation of everything before it, adds 8 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.norm1, self.conv1 = nn.BatchNorm2d(16), nn.Conv2d(16, 8, 3, padding=1)
        self.norm2, self.conv2 = nn.BatchNorm2d(24), nn.Conv2d(24, 8, 3, padding=1)
        self.norm3 = nn.BatchNorm2d(32)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.stem(x)
        f1 = torch.cat([f0, self.conv1(torch.relu(self.norm1(f0)))], 1)
        f2 = torch.cat([f1, self.conv2(torch.relu(self.norm2(f1)))], 1)
        return self.head(torch.relu(self.norm3(f2)).mean(dim=(2, 3)))


def _randomised(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_inception_style_branches_prune_and_equal_the_masked_original() -> None:
    model, x = _randomised(ConcatNet()), torch.randn(2, 3, 8, 8)
    graph = ModelGraph(model, x, warn_frozen=False)
    assert {g.name for g in graph.prunable_groups()} == {"a.0", "b.0", "join.0"}
    keep = {"a.0": list(range(0, 16, 2)), "b.0": list(range(0, 24, 3))}
    slim = slim_copy(model, x, keep)
    assert slim.join[0].in_channels == 16
    removed = [c for c in range(16) if c not in keep["a.0"]] + [16 + c for c in range(24) if c not in keep["b.0"]]
    with torch.no_grad():
        model.join[0].weight[:, removed] = 0
        assert torch.allclose(slim(x), model(x), atol=1e-5)


def test_densenet_style_features_prune_in_every_later_layer() -> None:
    model, x = _randomised(_Dense()), torch.randn(2, 3, 8, 8)
    graph = ModelGraph(model, x, warn_frozen=False)
    stem = next(g for g in graph.groups if g.name == "stem")
    assert stem.prunable, stem.frozen_reason
    assert {(m.module, m.dim) for m in stem.members} >= {("norm1", "out"), ("norm2", "out"), ("norm3", "out"),
                                                          ("conv2", "in"), ("head", "in")}
    keep = {"stem": [0, 3, 5, 6, 9, 12], "conv1": [1, 2, 7]}
    slim = slim_copy(model, x, keep)
    assert (slim.norm2.num_features, slim.norm3.num_features, slim.head.in_features) == (9, 17, 17)
    removed_f0 = [c for c in range(16) if c not in keep["stem"]]
    removed_f1 = [16 + c for c in range(8) if c not in keep["conv1"]]
    with torch.no_grad():  # zero what the removed features feed: the next convs and the head
        model.conv1.weight[:, removed_f0] = 0
        model.conv2.weight[:, removed_f0 + removed_f1] = 0
        model.head.weight[:, removed_f0 + removed_f1] = 0
        assert torch.allclose(slim(x), model(x), atol=1e-5)

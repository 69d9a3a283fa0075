"""edgeprune.prune.importance: the registry and the L1 criterion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import UnknownNameError
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.groups import ChannelGroup, GroupMember
from edgeprune.prune.importance import ScoringContext, get_importance, importance_names


def hand_built() -> nn.Sequential:
    conv = nn.Conv2d(2, 3, kernel_size=1, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5], [-3.0, 0.0]]).view(3, 2, 1, 1))
        conv.bias.copy_(torch.tensor([100.0, 100.0, 100.0]))  # biases are not part of the score
    return nn.Sequential(conv, nn.BatchNorm2d(3), nn.ReLU())


def conv_group(indices: tuple[int, ...] = (0, 1, 2)) -> ChannelGroup:
    return ChannelGroup(
        "0",
        len(indices),
        (GroupMember("0", "Conv2d", "out", indices), GroupMember("1", "BatchNorm2d", "out", indices)),
    )


def test_l1_scores_are_filter_sums() -> None:
    l1 = get_importance("l1")
    assert l1.name == "l1"
    ctx = ScoringContext(hand_built())
    l1.prepare(ctx)
    scores = l1.score(conv_group(), ctx)
    assert scores.dtype == np.float64
    assert scores.tolist() == [3.0, 1.0, 3.0]


def test_l1_follows_member_indices() -> None:
    ctx = ScoringContext(hand_built())
    assert get_importance("l1").score(conv_group((2, 1)), ctx).tolist() == [3.0, 1.0]


def test_l1_sums_over_producers() -> None:
    model = nn.ModuleDict({"a": nn.Conv2d(1, 2, 1, bias=False), "b": nn.Linear(3, 2)})
    with torch.no_grad():
        model["a"].weight.copy_(torch.tensor([1.0, -4.0]).view(2, 1, 1, 1))
        model["b"].weight.copy_(torch.tensor([[1.0, 1.0, -1.0], [0.0, 0.0, 0.5]]))
    group = ChannelGroup(
        "a",
        2,
        (
            GroupMember("a", "Conv2d", "out", (0, 1)),
            GroupMember("b", "Linear", "out", (1, 0)),  # the second producer's channels are swapped
            GroupMember("b", "Linear", "in", (0, 1)),  # consumers do not count
        ),
    )
    scores = get_importance("L1").score(group, ScoringContext(model))  # names are case-insensitive
    assert scores.tolist() == [1.0 + 0.5, 4.0 + 3.0]


def test_l1_on_a_traced_group(tiny_resnet: nn.Module, tiny_input: torch.Tensor) -> None:
    graph = ModelGraph(tiny_resnet, tiny_input)
    groups = {g.name: g for g in graph.groups}
    ctx = ScoringContext(tiny_resnet)
    stem = get_importance("l1").score(groups["stem.0"], ctx)
    expected = tiny_resnet.stem[0].weight.detach().abs().sum(dim=(1, 2, 3)).double().numpy()
    assert np.allclose(stem, expected)
    # the residual group: conv2 and the projection conv both produce its channels
    stream = get_importance("l1").score(groups["block.proj.0"], ctx)
    expected = (
        tiny_resnet.block.conv2.weight.detach().abs().sum(dim=(1, 2, 3))
        + tiny_resnet.block.proj[0].weight.detach().abs().sum(dim=(1, 2, 3))
    ).double().numpy()
    assert np.allclose(stream, expected)


def test_unknown_importance() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_importance("nope")
    assert "importance criterion 'nope'" in str(info.value)
    assert "l1" in info.value.known
    with pytest.raises(UnknownNameError, match="Did you mean 'l1'"):
        get_importance("l1x")


def test_importance_names_and_fresh_instances() -> None:
    assert "l1" in importance_names()
    assert get_importance("l1") is not get_importance("l1")


def test_the_cli_names_every_registered_criterion() -> None:
    """``--importance``'s names live in config (the CLI loads without torch); they match the registry."""
    from edgeprune.config import FINETUNE_SCHEDULES, IMPORTANCE_CRITERIA
    from edgeprune.train.schedules import make_scheduler

    assert sorted(IMPORTANCE_CRITERIA) == importance_names()
    for name in FINETUNE_SCHEDULES:  # each one the CLI offers is built
        optimiser = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
        assert make_scheduler(optimiser, name, 0.1, 10) is not None

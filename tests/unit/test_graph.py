"""edgeprune.prune.graph: channel groups, freezing, and physical channel removal."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from edgeprune.errors import ModelLoadError
from edgeprune.models.cifar_resnet import CifarResNet, ZeroPadShortcut
from edgeprune.prune.graph import ModelGraph, count_macs_and_params, find_classifier

CIFAR_X = torch.zeros(1, 3, 32, 32)
BLOCK_GROUPS = {f"layer{s}.{b}.conv1": 16 * 2 ** (s - 1) for s in (1, 2, 3) for b in range(3)}


@pytest.fixture(scope="module")
def cifar20_graph() -> ModelGraph:
    torch.manual_seed(0)
    return ModelGraph(CifarResNet(20).eval(), CIFAR_X)


def test_cifar_resnet20_classifier_is_frozen(cifar20_graph: ModelGraph) -> None:
    assert cifar20_graph.classifier == "linear"
    by_name = {g.name: g for g in cifar20_graph.groups}
    linear = by_name["linear"]
    assert not linear.prunable
    assert linear.width == 10
    assert "classifier" in linear.frozen_reason
    assert linear not in cifar20_graph.prunable_groups()


def test_cifar_resnet20_block_internal_groups_are_prunable(cifar20_graph: ModelGraph) -> None:
    by_name = {g.name: g for g in cifar20_graph.groups}
    for name, width in BLOCK_GROUPS.items():
        group = by_name[name]
        assert group.prunable, name
        assert group.width == width
        prefix = name[: -len("conv1")]
        assert {(m.module, m.dim) for m in group.members} == {
            (f"{prefix}conv1", "out"),
            (f"{prefix}bn1", "out"),
            (f"{prefix}conv2", "in"),
        }
        assert [m.module for m in group.producers()] == [f"{prefix}conv1", f"{prefix}bn1"]
        for member in group.members:
            assert member.indices == tuple(range(width))


def test_cifar_resnet20_residual_stream_is_coupled_through_padding(cifar20_graph: ModelGraph) -> None:
    # ZeroPadShortcut declares channel_padding, so the stage-1 residual stream (stem conv1, every bn2 of
    # stage 1) is one group of 16 channels whose members also reach into the later, wider stages.
    by_name = {g.name: g for g in cifar20_graph.groups}
    stream = by_name["conv1"]
    assert stream.width == 16
    modules = {m.module for m in stream.members}
    assert {"conv1", "bn1", "layer1.0.bn2", "layer1.2.bn2", "layer2.0.conv1", "layer3.0.conv1"} <= modules
    assert "linear" in modules  # the classifier's input features
    # the classifier's input indices of these channels follow the padding offsets (8 then 16)
    linear_in = next(m for m in stream.members if m.module == "linear" and m.dim == "in")
    assert linear_in.indices == tuple(range(24, 40))
    # every non-classifier group is prunable, and channels are partitioned: the block groups, the stream
    # and the channels each wider stage adds
    assert [g.name for g in cifar20_graph.groups if not g.prunable] == ["linear"]
    assert sum(g.width for g in cifar20_graph.groups if g.name not in BLOCK_GROUPS and g.prunable) == 64


def test_unmodelled_padding_is_frozen_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Without channel_padding the zero-pad shortcut is an op the dependency graph does not model: the
    # residual stream then couples 16-, 32- and 64-wide layers and must be frozen, with a logged reason.
    monkeypatch.setattr(ZeroPadShortcut, "channel_padding", False)
    torch.manual_seed(0)
    with caplog.at_level("WARNING", logger="edgeprune.prune.graph"):
        graph = ModelGraph(CifarResNet(20).eval(), CIFAR_X)
    by_name = {g.name: g for g in graph.groups}
    assert not by_name["conv1"].prunable
    assert "different widths" in by_name["conv1"].frozen_reason
    assert not by_name["linear"].prunable
    assert {g.name: g.width for g in graph.prunable_groups()} == BLOCK_GROUPS
    assert "froze 1 channel group(s)" in caplog.text  # the classifier is frozen silently
    assert "conv1 (couples layers of different widths" in caplog.text


def test_projection_shortcut_residual_stream_is_prunable(tiny_resnet: nn.Module, tiny_input: torch.Tensor) -> None:
    graph = ModelGraph(tiny_resnet, tiny_input)
    assert graph.classifier == "head"
    by_name = {g.name: g for g in graph.groups}
    assert set(by_name) == {"head", "stem.0", "block.conv1", "block.proj.0"}
    assert not by_name["head"].prunable
    assert {g.name: g.width for g in graph.prunable_groups()} == {"stem.0": 8, "block.conv1": 16, "block.proj.0": 16}
    stream = by_name["block.proj.0"]  # the residual add of conv2 and the projection, feeding the head
    assert {(m.module, m.dim) for m in stream.members} == {
        ("block.proj.0", "out"),
        ("block.proj.1", "out"),
        ("block.conv2", "out"),
        ("block.bn2", "out"),
        ("head", "in"),
    }
    assert {(m.module, m.dim) for m in by_name["stem.0"].members} == {
        ("stem.0", "out"),
        ("stem.1", "out"),
        ("block.conv1", "in"),
        ("block.proj.0", "in"),
    }


def test_remove_channels_makes_the_model_smaller_and_it_still_runs(
    tiny_resnet: nn.Module, tiny_input: torch.Tensor
) -> None:
    macs_before, params_before = count_macs_and_params(tiny_resnet, tiny_input)
    assert params_before == sum(p.numel() for p in tiny_resnet.parameters())
    graph = ModelGraph(tiny_resnet, tiny_input)
    graph.remove_channels({"stem.0": [0, 2, 4, 6], "block.proj.0": list(range(8)), "block.conv1": [1, 3, 5, 7, 9, 11]})
    m = tiny_resnet
    assert m.stem[0].weight.shape == (4, 3, 3, 3)
    assert m.stem[1].num_features == 4 and m.stem[1].running_mean.shape == (4,)
    assert m.block.conv1.weight.shape == (6, 4, 3, 3)
    assert m.block.bn1.num_features == 6
    assert m.block.conv2.weight.shape == (8, 6, 3, 3)
    assert m.block.proj[0].weight.shape == (8, 4, 1, 1)
    assert m.head.weight.shape == (4, 8)
    with torch.no_grad():
        out = m(tiny_input)
    assert out.shape == (1, 4)
    assert torch.isfinite(out).all()
    macs_after, params_after = count_macs_and_params(m, tiny_input)
    assert params_after == sum(p.numel() for p in m.parameters())
    assert params_after < params_before
    assert macs_after < macs_before


def test_remove_channels_keeps_the_right_filters(tiny_resnet: nn.Module, tiny_input: torch.Tensor) -> None:
    original = tiny_resnet.stem[0].weight.detach().clone()
    original_proj_in = tiny_resnet.block.proj[0].weight.detach().clone()
    ModelGraph(tiny_resnet, tiny_input).remove_channels({"stem.0": [1, 5, 6]})
    assert torch.equal(tiny_resnet.stem[0].weight, original[[1, 5, 6]])
    assert torch.equal(tiny_resnet.block.proj[0].weight, original_proj_in[:, [1, 5, 6]])


def test_removing_silenced_channels_is_exact(
    tiny_resnet: nn.Module, tiny_input: torch.Tensor
) -> None:
    # Channels whose BN scale and shift are zero carry only zeros (after ReLU): removing them must not
    # change the output.
    m = tiny_resnet
    removed = [0, 3, 4, 9, 10, 15]
    with torch.no_grad():
        m.block.bn1.weight[removed] = 0.0
        m.block.bn1.bias[removed] = 0.0
        expected = m(tiny_input)
    ModelGraph(m, tiny_input).remove_channels({"block.conv1": [c for c in range(16) if c not in removed]})
    assert m.block.conv1.out_channels == 10
    with torch.no_grad():
        assert torch.allclose(m(tiny_input), expected, atol=1e-6)


def test_cifar_resnet_remove_channels_and_count(cifar20_graph: ModelGraph) -> None:
    torch.manual_seed(0)
    model = CifarResNet(20).eval()
    macs, params = count_macs_and_params(model, CIFAR_X)
    assert (macs, params) == (40_927_882, 269_722)
    graph = ModelGraph(model, CIFAR_X)
    graph.remove_channels({name: list(range(width // 2)) for name, width in BLOCK_GROUPS.items()})
    for stage, width in ((1, 8), (2, 16), (3, 32)):
        for block in range(3):
            assert getattr(model, f"layer{stage}")[block].conv1.out_channels == width
            assert getattr(model, f"layer{stage}")[block].conv2.in_channels == width
    macs_after, params_after = count_macs_and_params(model, CIFAR_X)
    assert params_after < params and macs_after < macs
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_remove_channels_rejects_bad_requests(tiny_resnet: nn.Module, tiny_input: torch.Tensor) -> None:
    graph = ModelGraph(tiny_resnet, tiny_input)
    with pytest.raises(ValueError, match="unknown or frozen"):
        graph.remove_channels({"head": [0, 1]})
    with pytest.raises(ValueError, match="unknown or frozen"):
        graph.remove_channels({"no.such.group": [0]})
    with pytest.raises(ValueError, match="non-empty subset of 0..7"):
        graph.remove_channels({"stem.0": []})
    with pytest.raises(ValueError, match="non-empty subset of 0..7"):
        graph.remove_channels({"stem.0": [0, 8]})
    # keeping everything is a no-op
    graph.remove_channels({"stem.0": list(range(8))})
    assert tiny_resnet.stem[0].out_channels == 8


def test_frozen_modules(tiny_resnet: nn.Module, tiny_input: torch.Tensor) -> None:
    graph = ModelGraph(tiny_resnet, tiny_input, frozen_modules=["block.conv1"], warn_frozen=False)
    by_name = {g.name: g for g in graph.groups}
    assert not by_name["block.conv1"].prunable
    assert "frozen by request" in by_name["block.conv1"].frozen_reason
    # block.conv1's *input* channels are in the stem group, so it is frozen too
    assert not by_name["stem.0"].prunable
    assert by_name["block.proj.0"].prunable
    with pytest.raises(ModelLoadError, match="cannot freeze unknown module"):
        ModelGraph(tiny_resnet, tiny_input, frozen_modules=["nope"])


def test_find_classifier(tiny_resnet_cls: Callable[..., nn.Module], tiny_input: torch.Tensor) -> None:
    assert find_classifier(tiny_resnet_cls().eval(), tiny_input) == "head"

    class NoLogits(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum()

    assert find_classifier(NoLogits(), tiny_input) is None


def test_count_macs_restores_training_mode(tiny_resnet: nn.Module, tiny_input: torch.Tensor) -> None:
    tiny_resnet.train()
    count_macs_and_params(tiny_resnet, tiny_input)
    assert tiny_resnet.training

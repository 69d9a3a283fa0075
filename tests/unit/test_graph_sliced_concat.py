"""Concatenations that copy or slice channels become prunable groups (GhostNet, SPPF, C2f); partial residuals
(ReXNet) freeze only the channels before a slice's fixed bound, and group building is polynomial, bounded in
time and logs its progress.

Each pruned model must compute exactly what the original computes with the removed channels' contributions to
their consumers zeroed."""

from __future__ import annotations

import logging
import time

import pytest
import torch
from model_helpers import randomise_bn
from torch import nn

from edgeprune.errors import ModelConstructError
from edgeprune.prune import tp_groups
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy


def _conv(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class Ghost(nn.Module):
    """GhostNet's module: half the outputs from a convolution, half a depthwise copy of them, concatenated and
    sliced back to ``out_chs`` (which, with an even width, keeps every channel)."""

    def __init__(self, cin: int, out_chs: int) -> None:
        super().__init__()
        self.out_chs = out_chs
        self.primary = _conv(cin, out_chs // 2)
        self.cheap = _conv(out_chs // 2, out_chs // 2, 3, groups=out_chs // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary(x)
        return torch.cat([x1, self.cheap(x1)], dim=1)[:, :self.out_chs]


class GhostNetLike(nn.Module):
    """stem -> ghost -> (depthwise over the concatenation) -> ghost -> consumer -> head."""

    def __init__(self, dw: bool) -> None:
        super().__init__()
        self.stem = _conv(3, 8, 3)
        self.ghost1 = Ghost(8, 16)
        self.dw = _conv(16, 16, 3, groups=16) if dw else nn.Identity()
        self.ghost2 = Ghost(16, 12)
        self.consumer = nn.Conv2d(12, 10, 1)
        self.head = nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.consumer(self.ghost2(self.dw(self.ghost1(self.stem(x))))).mean((2, 3)))


class SppfLike(nn.Module):
    """SPPF: a convolution's output and three pooled copies of it, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.cv1 = _conv(3, 8)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.cv2 = nn.Conv2d(32, 6, 1)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.cv1(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        return self.head(self.cv2(torch.cat([y0, y1, y2, self.pool(y2)], 1)).mean((2, 3)))


class PartialResidual(nn.Module):
    """ReXNet's block: ``cat([y[:, :c] + x, y[:, c:]])``, the input's channels added to the first ``c`` outputs."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.cin = cin
        self.conv = _conv(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.cat([y[:, :self.cin] + x, y[:, self.cin:]], dim=1)


class RexNetLike(nn.Module):
    """``blocks`` partial residual blocks, each adding 4 channels: Torch-Pruning's own group building doubles its
    work with each (3 blocks took 0.04 s, 8 did not finish in a minute)."""

    def __init__(self, blocks: int) -> None:
        super().__init__()
        widths = [8 + 4 * i for i in range(blocks + 1)]
        self.stem = _conv(3, 8, 3)
        self.blocks = nn.Sequential(*[PartialResidual(widths[i], widths[i + 1]) for i in range(blocks)])
        self.head = nn.Linear(widths[-1], 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def _model(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return randomise_bn(module).eval()


def _zero_removed_inputs(model: nn.Module, graph: ModelGraph, keep: dict[str, list[int]]) -> None:
    """Zero, in ``model``, the weights through which each group's removed channels reach its consumers."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for group in graph.groups:
            if group.name not in keep:
                continue
            removed = [c for c in range(group.width) if c not in keep[group.name]]
            for member in group.members:
                layer = modules[member.module]
                if member.dim == "in" and isinstance(layer, (nn.Conv2d, nn.Linear)) and getattr(layer, "groups", 1) == 1:
                    layer.weight[:, [member.indices[c] for c in removed]] = 0


def _check_pruned_equals_masked(model: nn.Module, x: torch.Tensor, keep: dict[str, list[int]]) -> nn.Module:
    graph = ModelGraph(model, x[:1], warn_frozen=False)
    slim = slim_copy(model, x[:1], keep)
    _zero_removed_inputs(model, graph, keep)
    with torch.no_grad():
        torch.testing.assert_close(slim(x), model(x), atol=1e-5, rtol=1e-5)
    return slim


@pytest.mark.parametrize("dw", [pytest.param(False, marks=pytest.mark.full), True],
                         ids=["ghost-to-ghost", "depthwise-over-the-concatenation"])
def test_ghostnet_concatenations_are_prunable_and_pruning_is_exact(dw: bool) -> None:
    model, x = _model(GhostNetLike(dw)), torch.randn(2, 3, 12, 12)
    graph = ModelGraph(model, x[:1], warn_frozen=False)
    assert [g.name for g in graph.groups if not g.prunable] == ["head"]  # only the classifier's classes
    ghost1 = next(g for g in graph.groups if "ghost1.primary.0" in g.module_names)
    assert ghost1.width == 8  # a channel and its depthwise copy go together
    # its consumer reads each channel twice: at c and at 8 + c
    reads = sorted(m.indices[0] for m in ghost1.members if m.dim == "in" and m.module in ("ghost2.primary.0", "dw.0"))
    assert reads == [0, 8]
    ghost2 = next(g for g in graph.groups if "ghost2.primary.0" in g.module_names and g is not ghost1)
    keep = {g.name: list(range(0, g.width, 2)) for g in (ghost1, ghost2)}
    slim = _check_pruned_equals_masked(model, x, keep)
    assert slim.ghost1.primary[0].out_channels == 4 and slim.ghost1.cheap[0].out_channels == 4
    assert slim.ghost2.primary[0].in_channels == 8


def test_pooled_copies_of_a_channel_prune_together() -> None:
    model, x = _model(SppfLike()), torch.randn(2, 3, 10, 10)
    graph = ModelGraph(model, x[:1], warn_frozen=False)
    cv1 = next(g for g in graph.groups if g.name == "cv1.0")
    assert cv1.prunable and cv1.width == 8
    assert sorted(m.indices[1] for m in cv1.members if m.module == "cv2") == [1, 9, 17, 25]
    slim = _check_pruned_equals_masked(model, x, {"cv1.0": [0, 2, 3, 7]})
    assert slim.cv2.in_channels == 16


def test_partial_residuals_build_in_polynomial_time_and_freeze_only_before_a_slice_bound() -> None:
    model, x = _model(RexNetLike(8)), torch.randn(2, 3, 8, 8)
    start = time.perf_counter()
    graph = ModelGraph(model, x[:1], warn_frozen=False, timeout_s=60)
    assert time.perf_counter() - start < 15  # Torch-Pruning alone: more than a minute
    frozen = [g for g in graph.groups if not g.prunable and g.name != "head"]
    assert frozen and all("before a bound of a slice" in g.frozen_reason for g in frozen)
    assert sum(g.width for g in frozen) == 36  # the stem's 8 and the 4 each block but the last adds
    last = [g for g in graph.prunable_groups() if "blocks.7.conv.0" in g.module_names]
    assert len(last) == 1 and last[0].width == 4  # the channels the last block adds, after its slice's bound
    _check_pruned_equals_masked(model, x, {last[0].name: [1, 3]})


def test_group_building_has_a_deadline_naming_the_layer_and_the_way_out() -> None:
    model, x = _model(RexNetLike(3)), torch.randn(1, 3, 8, 8)
    with pytest.raises(ModelConstructError) as info:
        ModelGraph(model, x, warn_frozen=False, timeout_s=1e-9)
    message = str(info.value)
    assert "did not finish in" in message and "--freeze" in message and "\n" not in message
    assert info.value.module and info.value.module in dict(model.named_modules())


def test_group_building_logs_its_progress(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(tp_groups, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="edgeprune.prune"):
        ModelGraph(_model(RexNetLike(2)), torch.randn(1, 3, 8, 8), warn_frozen=False)
    assert "building channel groups:" in caplog.text and "layers traced" in caplog.text


def test_a_frozen_module_stops_the_walk_and_freezes_what_reaches_it() -> None:
    model, x = _model(RexNetLike(4)), torch.randn(1, 3, 8, 8)
    graph = ModelGraph(model, x, frozen_modules=["blocks.1"], warn_frozen=False)
    touching = [g for g in graph.groups if any(m.startswith("blocks.1.") for m in g.module_names)]
    assert touching and all(not g.prunable and "frozen by request" in g.frozen_reason for g in touching)

"""Channels that a model reshapes, splits or concatenates along another dimension (issue 19).

Torch-Pruning treats a reshape it does not model as element-wise, which couples channel i before a channel
shuffle to channel i after it. edgeprune freezes every group whose channels pass through such an op (naming
it) and keeps the channels inside the branches prunable; the pruned model must compute exactly what the
original computes with the removed channels zeroed out of their consumers.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.reshapes import keeps_channels
from edgeprune.prune.surgery import slim_copy


@pytest.mark.parametrize("in_shape, out_shape, channels, keeps", [
    ((1, 64, 7, 7), (1, 3136), 64, True),             # the flatten into a classifier
    ((1, 64, 1, 1), (1, 64), 64, True),               # squeeze
    ((1, 64), (1, 64, 1, 1), 64, True),               # squeeze-excitation's view back
    ((1, 768, 7, 7), (1, 768, 49), 768, True),        # ViT's patch embedding folded into tokens
    ((1, 7, 7, 96), (1, 49, 96), 96, True),           # channels-last tokens
    ((1, 48, 16, 16), (1, 2, 24, 16, 16), 48, False),  # channel shuffle
    ((1, 2, 24, 16, 16), (1, 48, 16, 16), None, False),  # its inverse, channels unknown
    ((4, 49, 288), (4, 49, 3, 3, 32), 288, False),    # qkv split into heads
    ((1, 64, 8, 8), (1, 32, 16, 8), 64, False),       # channels folded into space
    ((40,), (1, 40, 1, 1), 40, True),                 # a layer scale made broadcastable (ConvNeXt's gamma)
    ((40,), (1, 40, 1, 1), None, True),               # ... whichever channel count the graph infers
    ((1, 40, 1, 1), (40,), 40, True),                 # and back
    ((48,), (1, 2, 24, 1, 1), 48, False),             # a vector split in two is rearranged
])
def test_keeps_channels(in_shape: tuple, out_shape: tuple, channels: int | None, keeps: bool) -> None:
    assert keeps_channels(in_shape, out_shape, channels) is keeps


class ShuffleUnit(nn.Module):
    """A ShuffleNet V2 unit: split, a branch on one half, concat, channel shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(nn.Conv2d(half, 12, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
                                    nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False), nn.BatchNorm2d(12),
                                    nn.Conv2d(12, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        out = torch.cat((a, self.branch(b)), dim=1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class TinyShuffleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.unit1 = ShuffleUnit(16)
        self.unit2 = ShuffleUnit(16)
        self.head = nn.Sequential(nn.Conv2d(16, 24, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(24, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.unit2(self.unit1(self.stem(x))))


def test_channel_shuffle_and_split_freeze_the_stream_and_keep_the_branches_prunable() -> None:
    torch.manual_seed(0)
    model = TinyShuffleNet().eval()
    example = torch.randn(1, 3, 16, 16)
    graph = ModelGraph(model, example, warn_frozen=False)
    by_name = {g.name: g for g in graph.groups}
    stream = [g for g in graph.groups if "stem.0" in g.module_names]
    assert stream and not stream[0].prunable
    assert "split" in stream[0].frozen_reason or "reshape" in stream[0].frozen_reason
    for unit in ("unit1", "unit2"):  # the branch's inner width never meets the split or the shuffle
        inner = [g for g in graph.groups if f"{unit}.branch.3" in g.module_names and f"{unit}.branch.0" in g.module_names]
        assert inner and inner[0].prunable and inner[0].width == 12, inner
    assert by_name["head.0"].prunable

    keep = {name: list(range(0, g.width, 2)) for name, g in by_name.items() if g.prunable}
    slim = slim_copy(model, example, keep)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        got = slim(x)
        masked = _zero_removed_inputs(model, graph, keep)(x)
    assert torch.allclose(got, masked, atol=1e-5), "pruning through the shuffle changed what the kept channels compute"


def _zero_removed_inputs(model: nn.Module, graph: ModelGraph, keep: dict[str, list[int]]) -> nn.Module:
    """The original model with every removed channel's producers zeroed (the pruned model's function)."""
    import copy

    masked = copy.deepcopy(model)
    modules = dict(masked.named_modules())
    for group in graph.groups:
        if group.name not in keep:
            continue
        removed = [c for c in range(group.width) if c not in set(keep[group.name])]
        for member in group.members:
            module = modules[member.module]
            rows = [member.indices[c] for c in removed]
            if member.dim == "in" and isinstance(module, (nn.Conv2d, nn.Linear)) and getattr(module, "groups", 1) == 1:
                module.weight.data[:, rows] = 0
    return masked


class LastDimConcat(nn.Module):
    """Token features concatenated along the last dimension (Swin's patch merging)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.proj(x)
        return self.mlp(torch.cat((t, t * 2), dim=-1)).mean(1)


def test_a_concatenation_along_the_token_features_freezes_what_passes_through_it() -> None:
    torch.manual_seed(0)
    model = LastDimConcat().eval()
    graph = ModelGraph(model, torch.randn(1, 6, 8), warn_frozen=False)
    by_name = {g.name: g for g in graph.groups}
    assert not by_name["proj"].prunable and "concatenation along dim 2" in by_name["proj"].frozen_reason
    assert by_name["mlp.0"].prunable  # the hidden width of the MLP stays prunable


class LayerScaleBlock(nn.Module):
    """ConvNeXt's block: depthwise conv, channel LayerNorm, MLP, scaled by ``gamma.reshape(1, -1, 1, 1)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pw1, self.pw2 = nn.Linear(channels, 2 * channels), nn.Linear(2 * channels, channels)
        self.gamma = nn.Parameter(torch.rand(channels) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.pw2(torch.nn.functional.gelu(self.pw1(y))).permute(0, 3, 1, 2)
        return x + y * self.gamma.reshape(1, -1, 1, 1)


class TinyConvNeXt(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 2, stride=2)
        self.blocks = nn.Sequential(LayerScaleBlock(16), LayerScaleBlock(16))
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def test_a_layer_scale_reshape_keeps_the_residual_stream_prunable() -> None:
    from edgeprune.models.weights import apply_state_dict
    from edgeprune.prune.plan import module_shapes, resize_modules

    torch.manual_seed(0)
    model, x = TinyConvNeXt().eval(), torch.randn(2, 3, 16, 16)
    graph = ModelGraph(model, x[:1], warn_frozen=False)
    stream = next(g for g in graph.groups if "stem" in g.module_names)
    assert stream.prunable, stream.frozen_reason
    assert {"blocks.0.dw", "blocks.1.norm", "blocks.1.pw2"} <= set(stream.module_names)
    slim = slim_copy(model, x[:1], {stream.name: list(range(0, 16, 2))})
    assert slim.blocks[1].gamma.shape == (8,) and slim.blocks[1].norm.normalized_shape == (8,)
    # the plan's record of the slim model rebuilds it exactly (the norm's width follows its weight)
    rebuilt = TinyConvNeXt().eval()
    resize_modules(rebuilt, module_shapes(slim))
    apply_state_dict(rebuilt, slim.state_dict(), "slim")
    with torch.no_grad():
        assert torch.equal(rebuilt(x), slim(x))


def test_torch_pruning_warnings_go_to_the_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import warnings

    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as escaped, caplog.at_level(logging.DEBUG, logger="edgeprune.prune"):
        warnings.simplefilter("always")
        ModelGraph(TinyConvNeXt().eval(), torch.randn(1, 3, 16, 16), warn_frozen=False)
    assert not [w for w in escaped if "torch_pruning" in w.filename], [str(w.message) for w in escaped]
    assert "Torch-Pruning: Unwrapped parameters detected" in caplog.text  # the layer scales, noted once at DEBUG

"""The honest Torch-Pruning anchor of tools/bench/pruning_tp.py (issue 18): the option-A shortcut rewritten as the
selection convolution it computes, pruned by Torch-Pruning's own graph, and the bisection's budget fallback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import pruning_tp  # noqa: E402

from edgeprune.models.cifar_resnet import CifarResNet, ZeroPadShortcut  # noqa: E402


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = CifarResNet(depth=14).eval()
    for m in model.modules():  # non-trivial batch-norm statistics so that channel mistakes show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def test_the_rewritten_shortcuts_compute_the_same_function() -> None:
    model = _model()
    rewritten = pruning_tp.with_conv_shortcuts(model)
    x = torch.randn(4, 3, 32, 32)
    assert not any(isinstance(m, ZeroPadShortcut) for m in rewritten.modules())
    assert len(pruning_tp.selection_convs(rewritten)) == 2
    assert torch.equal(model(x), rewritten(x))


def test_tp_exact_keeps_the_shortcut_aligned_with_the_channels_it_kept() -> None:
    """Each pruned selection matrix maps every kept input channel to the output channel it fed in the original.

    The original shortcut sends input channel i to output channel pad_front + i. After pruning, kept input
    channels (in order) and kept output channels (in order) are sub-sequences of the original ones, so the
    selection must stay a 0/1 matrix, at most one 1 per row and column, ones in increasing order (monotone),
    and frozen for the fine-tune. Edgeprune's independent-sides pruner (`tp`) keeps no such matrix at all."""
    model = _model()
    x = torch.randn(1, 3, 32, 32)
    pruned = pruning_tp.tp_prune(model, x, 0.5, 4, "linear", "tp-exact")
    convs = pruning_tp.selection_convs(pruned)
    assert len(convs) == 2
    for conv in convs:
        w = conv.weight[:, :, 0, 0]
        assert not conv.weight.requires_grad
        assert set(w.unique().tolist()) <= {0.0, 1.0}
        assert (w.sum(0) <= 1).all() and (w.sum(1) <= 1).all()
        rows, cols = w.nonzero(as_tuple=True)
        assert torch.equal(rows, rows.sort().values) and torch.equal(cols, cols.sort().values)
        assert conv.in_channels < 16 * (2 if conv is convs[1] else 1)  # the stream really was pruned
    with torch.no_grad():
        assert torch.isfinite(pruned(torch.randn(2, 3, 32, 32))).all()


class _FakeMeasurer:
    """Returns a latency per conv-width signature; no runtime involved (this tests the bisection's arithmetic)."""

    def __init__(self, ms_by_ratio: dict[float, float]) -> None:
        self.ms_by_ratio = ms_by_ratio

    def measure(self, model: Any, name: str, spec: Any) -> Any:
        ratio = float(name.removeprefix("tp-r"))
        ms = min((r for r in self.ms_by_ratio), key=lambda r: abs(r - ratio))
        return type("M", (), {"stats": type("S", (), {"median_ms": self.ms_by_ratio[ms]})()})()


def test_the_bisection_keeps_a_model_within_the_budget_when_none_meets_the_headroom_target() -> None:
    widths = {0.75: 8, 0.375: 12}

    def prune(ratio: float) -> nn.Module:
        width = widths[min(widths, key=lambda r: abs(r - ratio))]
        return nn.Sequential(nn.Conv2d(3, width, 1))

    measurer = _FakeMeasurer({0.75: 0.68, 0.375: 0.75})
    strict = pruning_tp.bisect_ratio(prune, measurer, target_ms=0.66, max_ratio=0.75, steps=4)  # type: ignore[arg-type]
    assert strict.ratio is None
    lenient = pruning_tp.bisect_ratio(prune, measurer, target_ms=0.66, max_ratio=0.75, steps=4,  # type: ignore[arg-type]
                                      budget_ms=0.69)
    assert lenient.ratio == 0.75 and lenient.model is not None

"""Torch-Pruning's own magnitude pruner as the pruning benchmark's baseline, bisected on measured latency.

One uniform ``pruning_ratio`` for every group (``global_pruning=False``), ``MagnitudeImportance(p=1)``,
``round_to`` = the target's channel alignment, the classifier ignored. The option-A zero-pad shortcut of
the CIFAR ResNets is handed to Torch-Pruning through ``customized_pruners`` with edgeprune's own pruner
for it (``edgeprune.prune.graph._ChannelPaddingPruner``), so Torch-Pruning can trace and prune the model.

Two variants:

* ``tp``: every group, the residual stream included. Torch-Pruning prunes the two sides of a zero-pad
  shortcut independently (that pruner does not couple them, and Torch-Pruning's graph has no notion of
  the padding offset), so where a stage's residual stream is pruned, the channels the next stage receives
  through the shortcut no longer line up with the ones it was trained on. The model runs and exports,
  but its function changes at the stage boundaries: a known limit of the stock tool on this model.
* ``tp-inner``: the convolutions that feed a residual add are ignored as well, so only the block-internal
  channels are pruned (the classic choice for ResNet-56, Li et al. 2017). Always function-preserving,
  but it cannot cut as deep.
* ``tp-exact`` (issue 18, the honest anchor): Torch-Pruning as its authors intend, on its own graph with no
  edgeprune pruner. Before tracing, every option-A shortcut is rewritten as the layer it computes: a frozen
  1x1 convolution with the shortcut's stride whose weight is the zero-padded identity (output channel
  ``pad_front + i`` = input channel ``i``), which Torch-Pruning traces natively. Pruning a residual-stream
  channel then removes the matching column or row of that selection matrix, so the pruned model computes
  exactly what the original computes on the kept channels, at every stage boundary. The selection
  convolution stays in the exported model (one small 1x1 kernel per stage boundary where the original ran a
  slice and a pad); ``tools/bench/pruning.py`` records the latency of the unpruned rewritten model, paired
  with the original, in each such cell.

The ratio is bisected on the measured latency of the exported ONNX file (same timing as fit's
confirmation); the least-pruned ratio whose latency meets ``budget * (1 - headroom)`` is kept, then
recovered (batch-norm re-estimation, optional fine-tune) and confirmed against the budget itself.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer, Measurement
from edgeprune.prune.graph import ModelGraph, _ChannelPaddingPruner

log = logging.getLogger("pruning_bench.tp")

TP_METHODS = ("tp", "tp-inner", "tp-exact")


def shortcut_as_conv(shortcut: nn.Module) -> nn.Conv2d:
    """The frozen 1x1 convolution that computes an option-A shortcut (stride, zero-padded identity) exactly."""
    conv = nn.Conv2d(int(shortcut.in_channels), int(shortcut.out_channels), 1, stride=int(shortcut.stride),
                     bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for i in range(int(shortcut.in_channels)):
            conv.weight[int(shortcut.pad_front) + i, i, 0, 0] = 1.0
    conv.weight.requires_grad_(False)  # a selection matrix, not a learned layer: fine-tuning leaves it alone
    conv.shortcut_selection = True  # type: ignore[attr-defined]  # survives pruning (Torch-Pruning edits in place)
    return conv


def with_conv_shortcuts(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose channel-padding shortcuts are replaced by :func:`shortcut_as_conv`."""
    rewritten = copy.deepcopy(model).eval()
    for name, module in list(rewritten.named_modules()):
        if getattr(module, "channel_padding", False):
            parent_name, _, attr = name.rpartition(".")
            parent = rewritten.get_submodule(parent_name) if parent_name else rewritten
            setattr(parent, attr, shortcut_as_conv(module))
    return rewritten


def selection_convs(model: nn.Module) -> list[nn.Conv2d]:
    """The shortcut convolutions :func:`with_conv_shortcuts` inserted."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and getattr(m, "shortcut_selection", False)]


def residual_convs(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """Convolutions whose outputs are coupled with another convolution's (they feed a residual add).

    Found with edgeprune's channel groups: a group with more than one convolution on its output side.
    """
    graph = ModelGraph(model, example, warn_frozen=False)
    modules = dict(model.named_modules())
    coupled: list[nn.Module] = []
    for group in graph.groups:
        producers = {m.module for m in group.members if m.dim == "out" and m.kind == "Conv2d"}
        if len(producers) > 1:
            coupled += [modules[name] for name in sorted(producers)]
    return coupled


def tp_prune(model: nn.Module, example: torch.Tensor, ratio: float, round_to: int, classifier: str | None,
             variant: str) -> nn.Module:
    """A pruned copy of ``model``: Torch-Pruning's magnitude pruner at one uniform ``ratio``.

    ``tp-exact`` prunes the rewritten model (:func:`with_conv_shortcuts`). The selection convolutions are not
    ignored: Torch-Pruning skips every group that holds an ignored layer, which would freeze the residual
    stream of stages 2 and 3. Their weights are re-frozen after pruning (Torch-Pruning replaces parameters).
    """
    pruned = with_conv_shortcuts(model) if variant == "tp-exact" else copy.deepcopy(model).eval()
    if ratio <= 0:
        return pruned
    modules = dict(pruned.named_modules())
    ignored = [modules[classifier]] if classifier else []
    if variant == "tp-inner":
        ignored += residual_convs(pruned, example)
    padding_types = {type(m) for m in pruned.modules() if getattr(m, "channel_padding", False)}
    with torch.enable_grad():
        pruner = tp.pruner.MagnitudePruner(
            pruned, example, importance=tp.importance.MagnitudeImportance(p=1), global_pruning=False,
            pruning_ratio=ratio, round_to=round_to, ignored_layers=ignored,
            customized_pruners={t: _ChannelPaddingPruner() for t in padding_types})
        pruner.step()
    for conv in selection_convs(pruned):
        conv.weight.requires_grad_(False)
    return pruned.eval()


def conv_widths(model: nn.Module) -> tuple[int, ...]:
    """Output widths of every convolution (identifies an architecture for the measurement cache)."""
    return tuple(int(m.out_channels) for m in model.modules() if isinstance(m, nn.Conv2d))


@dataclass
class BisectionResult:
    """Outcome of the ratio bisection: the kept ratio (None when unreachable) and every measurement."""

    ratio: float | None
    model: nn.Module | None
    floor_ms: float
    rounds: list[dict[str, Any]] = field(default_factory=list)


def bisect_ratio(prune: Callable[[float], nn.Module], measurer: CandidateMeasurer, target_ms: float,
                 max_ratio: float, steps: int, lo: float = 0.0, budget_ms: float | None = None) -> BisectionResult:
    """Smallest pruning ratio in (lo, max_ratio] whose exported model measures <= ``target_ms``.

    Architectures already measured are not measured again (round_to makes many ratios identical). A ratio
    that leaves some convolution with no channel (or fails to prune) counts as too deep. When no ratio
    meets ``target_ms`` (the budget less the search headroom) but one met ``budget_ms`` itself, the least
    pruned of those is kept: the anchor gets every model the budget allows, even one fit's headroom
    would have passed over.
    """
    under_budget: list[tuple[float, nn.Module]] = []
    cache: dict[tuple[int, ...], float] = {}
    result = BisectionResult(None, None, float("inf"))
    hi: float | None = None
    ratio = max_ratio
    for _ in range(steps):
        try:
            model = prune(ratio)
            widths = conv_widths(model)
            valid = min(widths) > 0
        except Exception as exc:  # Torch-Pruning refuses some ratios in many ways; treat as too deep
            log.info("ratio %.4f: cannot prune (%s)", ratio, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            valid, model, widths = False, None, ()
        if not valid:
            max_ratio = ratio
            ratio = (lo + ratio) / 2
            continue
        if widths not in cache:
            cache[widths] = measurer.measure(model, f"tp-r{ratio:.4f}", CONFIRM_TIMING).stats.median_ms
            result.rounds.append({"ratio": ratio, "median_ms": cache[widths], "meets": cache[widths] <= target_ms})
            log.info("tp ratio %.4f: measured %.3f ms (%s)", ratio, cache[widths],
                     "meets" if cache[widths] <= target_ms else "over")
        ms = cache[widths]
        result.floor_ms = min(result.floor_ms, ms)
        if budget_ms is not None and ms <= budget_ms:
            under_budget.append((ratio, model))
        if ms <= target_ms:
            hi, result.ratio, result.model = ratio, ratio, model
            ratio = (lo + ratio) / 2
        else:
            lo = ratio
            if hi is None:
                break  # the deepest ratio tried is over the target: unreachable
            ratio = (ratio + hi) / 2
    if result.ratio is None and under_budget:
        result.ratio, result.model = min(under_budget, key=lambda rm: rm[0])
        log.info("no ratio met the search target %.3f ms; keeping ratio %.4f, measured within the budget %.3f ms",
                 target_ms, result.ratio, budget_ms)
    return result


def confirm_recovered(measurer: CandidateMeasurer, slim: nn.Module, budget_ms: float) -> tuple[Measurement, int]:
    """Measure the recovered model with fit's confirmation timing; returns it and the measurements taken.

    As in ``edgeprune.fit``: the bisection already confirmed this architecture before recovery, so a miss
    after recovery means the two confirmations disagree. One more measurement of the same artifact decides
    (two of three) and is the figure kept.
    """
    final = measurer.measure(slim, "tp-final", CONFIRM_TIMING)
    if final.stats.median_ms <= budget_ms:
        return final, 1
    again = measurer.time(final.artifact, CONFIRM_TIMING)
    log.info("tp confirmation after recovery missed (%.3f ms); measured again: %.3f ms", final.stats.median_ms,
             again.stats.median_ms)
    return again, 2

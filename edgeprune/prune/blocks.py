"""Depth pruning: residual blocks that can be removed whole, and what removing each one costs.

Why edgeprune removes blocks as well as channels: on a 1-thread runtime a small network's latency is
dominated by per-kernel overhead, so thinning channels buys little speed per unit of accuracy lost, while
removing a residual block removes its kernels outright. Measured on cifar-resnet56 (ONNX Runtime, 1 thread,
2x measured speedup, 4 distillation epochs on 5,085 images): channel pruning alone (lasso) reached 79.3%
top-1, removing 14 of 27 blocks reached 87.7% (docs/figures/pruning-results/cell-{lasso,blocks}-2x-ft4kd.json;
docs/benchmarks.md has the full table). Residual networks
behave like ensembles of shallower paths (Veit et al. 2016, "Residual networks behave like ensembles of
relatively shallow networks"), which is why a block can go and fine-tuning recovers quickly.

A block is removable when it is a module whose output is ``act(x + f(x))`` or ``x + f(x)`` for its own
input ``x`` (an identity shortcut, found by tracing the module with torch.fx) and whose output has its
input's shape. Removing it replaces it with ``nn.Identity``: the residual branch ``f`` goes; when a ReLU
follows the add and ``x`` is itself a ReLU output (the usual ResNet layout) the block's output was already
``x`` where ``f`` is zero.

Cost of removal: the distortion of the network's output on calibration data (label-free; the block-level
counterpart of output-reconstruction criteria such as NISP's). For a classifier it is the KL divergence from the
original's class probabilities; the task gives its own for other outputs (a detector's class scores and boxes,
a segmenter's per-pixel classes: :meth:`edgeprune.tasks.base.Task.output_distortion`). The order is greedy:
each next block is the one whose removal, together with the blocks already removed, distorts the output
least. Scoring each block alone once is cheaper but ignores interactions: on cifar-resnet56 it removed all 8 removable stage-2 blocks among 14, which kept 56.8% top-1
before fine-tuning against 68.3% for the greedy order; after a short distillation fine-tune the two sets
ended within noise of each other (89.5% and 88.6%; docs/figures/block-choice.json).

Each candidate is scored *after* its batch-norm statistics are re-estimated (``recalibration`` images), as
the chosen model will be: removing a block shifts the statistics of every later layer, and a block whose
removal looks cheap under the stale statistics can be dear once they are corrected, and the reverse.
Measured on cifar-resnet56 with JPEG calibration images: scored with stale statistics, the greedy order took
7 of the 8 removable stage-3 blocks among 14; that set recovered to 77.8% top-1 (lossless subset) after a
short distillation fine-tune of 12,800 images, against 85.9% for the set chosen on lossless images, and its
held-out KL before fine-tuning was 2.03 against 1.45. Scored after re-estimation, the order on the same JPEG
images removes 4 stage-3 blocks among 14 and recovers to 88.6% (``tools/bench/block_choice.py``, results in
docs/benchmarks.md). The price is one batch-norm pass per candidate: about 6 min for 18 blocks of
cifar-resnet56 on one core.
"""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Callable, Sequence

import torch
from torch import fx, nn

from edgeprune.progress import Advance, progress_bar
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
from edgeprune.tasks.base import class_kl

log = logging.getLogger(__name__)

_ADDS = {operator.add, operator.iadd, torch.add}

#: (a batch of outputs, the original's outputs on the same images) -> distortion, 0 when equal
OutputDistortion = Callable[[torch.Tensor, torch.Tensor], float]


def find_removable_blocks(model: nn.Module, example: torch.Tensor, frozen_modules: Sequence[str] = ()) -> list[str]:
    """Names of the outermost modules of ``model`` that are identity-shortcut residual blocks, in model order.

    Modules named in ``frozen_modules`` (or inside or around one) are never returned.
    """
    shapes = _io_shapes(model, example)
    found: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(f + ".") or name == f for f in found):
            continue  # the root, or inside a block already found
        if _touches_frozen(name, frozen_modules):
            continue
        in_shape, out_shape = shapes.get(name, (None, None))
        if in_shape is None or in_shape != out_shape or not any(True for _ in module.parameters()):
            continue
        if _has_identity_shortcut(module):
            found.append(name)
    return found


def _touches_frozen(name: str, frozen_modules: Sequence[str]) -> bool:
    return any(name == f or name.startswith(f + ".") or f.startswith(name + ".") for f in frozen_modules)


def _io_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Input and output shapes of every module called with exactly one tensor and returning one tensor."""
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    handles = []

    def hook(name: str):  # noqa: ANN202 - a hook factory
        def record(_module: nn.Module, args: tuple, output: object) -> None:
            if len(args) == 1 and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[name] = (tuple(args[0].shape), tuple(output.shape))
        return record

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(example)
            model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _has_identity_shortcut(module: nn.Module) -> bool:
    """Whether ``module``'s traced graph adds its own input (directly or through nn.Identity) to another value."""
    try:
        graph = _ShallowTracer().trace(module)
    except Exception:  # noqa: BLE001 - untraceable user code is simply not a removable block
        return False
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return False
    identity_of_input = {placeholders[0]}
    submodules = dict(module.named_modules())
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(submodules.get(str(node.target)), nn.Identity) \
                and node.args and node.args[0] in identity_of_input:
            identity_of_input.add(node)
        is_add = (node.op == "call_function" and node.target in _ADDS) or \
                 (node.op == "call_method" and node.target in ("add", "add_"))
        if is_add and len(node.args) >= 2:
            operands = list(node.args[:2])
            if sum(a in identity_of_input for a in operands) == 1:
                return True
    return False


class _ShallowTracer(fx.Tracer):
    """Traces one module's own forward: every submodule is a leaf, so an add inside a child block is not seen."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def set_submodule(model: nn.Module, name: str, replacement: nn.Module) -> None:
    """Replace the submodule at dotted path ``name`` with ``replacement``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, replacement)


def remove_blocks(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """A deep copy of ``model`` with each named block replaced by ``nn.Identity`` (the original is untouched)."""
    slim = copy.deepcopy(model)
    for name in names:
        set_submodule(slim, name, nn.Identity())
    return slim


def batched_outputs(model: nn.Module, calibration: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's outputs on ``calibration``, run where the model is, returned on the CPU."""
    device = next((p.device for p in model.parameters()), calibration.device)
    return torch.cat([model(calibration[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(calibration), batch_size)])


def _distortions(model: nn.Module, candidates: Sequence[str], calibration: torch.Tensor, reference: torch.Tensor,
                 batch_size: int, recalibration: torch.Tensor | None = None,
                 distortion_of: OutputDistortion = class_kl, advance: Advance | None = None) -> dict[str, float]:
    """The output distortion of the model with the block removed, per candidate (``reference``: the original's
    outputs); each block is swapped out and put back.

    With ``recalibration``, each candidate's batch-norm statistics are re-estimated on those images before
    it is scored, and restored afterwards.
    """
    distortion: dict[str, float] = {}
    for name in candidates:
        block = model.get_submodule(name)
        set_submodule(model, name, nn.Identity())
        saved = [(b, b.detach().clone()) for b in model.buffers()] if recalibration is not None else []
        try:
            if recalibration is not None:
                recalibrate_batchnorm(model, recalibration)
            kl = distortion_of(batched_outputs(model, calibration, batch_size), reference)
        finally:
            for buffer, value in saved:
                buffer.copy_(value)
            model.eval()
            set_submodule(model, name, block)
        distortion[name] = max(float(kl), 0.0)
        if advance is not None:
            advance(1)
    return distortion


@torch.no_grad()
def removal_distortion(model: nn.Module, blocks: Sequence[str], calibration: torch.Tensor,
                       batch_size: int = 128, distortion_of: OutputDistortion = class_kl) -> dict[str, float]:
    """Per block: the output distortion of the model with only that block removed, over ``calibration``.

    Each block is swapped for ``nn.Identity`` in place and restored at once; ``model`` ends unchanged.
    """
    was_training = model.training
    model.eval()
    try:
        reference = batched_outputs(model, calibration, batch_size)
        return _distortions(model, blocks, calibration, reference, batch_size, distortion_of=distortion_of)
    finally:
        model.train(was_training)


@torch.no_grad()
def greedy_removal_order(model: nn.Module, blocks: Sequence[str], calibration: torch.Tensor, count: int,
                         batch_size: int = 128, recalibration: torch.Tensor | None = None,
                         distortion_of: OutputDistortion = class_kl) -> tuple[list[str], dict[str, float]]:
    """The first ``count`` blocks of the greedy order, and the output distortion after each removal.

    With ``recalibration``, every candidate is scored after re-estimating its batch-norm statistics on those
    images (see the module's docs). Works on a copy; ``model`` is untouched. Costs about
    ``count * len(blocks)`` forward passes over ``calibration``, plus as many over ``recalibration``.
    """
    work = copy.deepcopy(model).eval()
    reference = batched_outputs(work, calibration, batch_size)
    order: list[str] = []
    distortion: dict[str, float] = {}
    steps = min(count, len(blocks))
    trials = sum(len(blocks) - i for i in range(steps))
    with progress_bar("ordering residual blocks by output distortion", trials, "trial removals") as advance:
        for _ in range(steps):
            remaining = [n for n in blocks if n not in distortion]
            scores = _distortions(work, remaining, calibration, reference, batch_size, recalibration, distortion_of,
                                  advance)
            best = min(remaining, key=lambda n: scores[n])  # ties: model order
            set_submodule(work, best, nn.Identity())
            order.append(best)
            distortion[best] = scores[best]
    return order, distortion


def removal_order(distortion: dict[str, float]) -> list[str]:
    """Blocks from cheapest to dearest to remove (ties keep model order)."""
    names = list(distortion)
    return sorted(names, key=lambda n: (distortion[n], names.index(n)))

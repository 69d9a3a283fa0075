"""The depth stage of a fit run (``--prune-blocks``): remove whole residual blocks before pruning channels.

Blocks go in greedy order of least output distortion, each candidate scored after its batch-norm statistics
are re-estimated on the calibration images (:mod:`edgeprune.prune.blocks`); how many go is found by
bisection on the *measured* latency (or the shipped profile's prediction for predicted targets): the fewest
blocks whose removal meets the search target (the budget less the search headroom), capped at
:data:`MAX_REMOVED_SHARE` of the removable blocks. What the cap leaves over budget is the channel search's
job. Every candidate's batch-norm statistics are re-estimated on the calibration images (removing a block
shifts the statistics of every later layer), and the chosen model becomes the reference that channel
pruning starts from.

Why depth first, and all the way to the budget when it can: at 2x measured speedup on cifar-resnet56
(ONNX Runtime, 1 thread, 4 distillation epochs), 14 blocks removed reached 87.7% top-1, channels alone
79.3% (docs/figures/pruning-results/cell-{blocks,lasso}-2x-ft4kd.json). Latency is not predicted per block because the count is
settled by a handful of measurements (about log2 of the removable blocks), each a real export and timing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from edgeprune.prune.blocks import OutputDistortion, find_removable_blocks, greedy_removal_order, remove_blocks
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
from edgeprune.tasks.base import class_kl
from edgeprune.train.device import placed_on

log = logging.getLogger(__name__)

#: at most this share of the removable blocks is removed (the rest of the way is channel pruning)
MAX_REMOVED_SHARE = 0.75

#: calibration images the greedy removal order is scored on
DISTORTION_IMAGES = 128

#: a block count measured at most this share over the search target is measured once more, and the mean of the
#: two readings decides (keeping the lower one would bias the verdict low): one reading taken in a burst of
#: load cost the pruning benchmark's seed-1 cell a block (15 blocks read 1.209 ms against the 1.131 ms target;
#: seed 0 had shipped 15 blocks at 1.106 ms)
NEAR_MISS_SHARE = 0.10

#: the depth hint is given when the budget asks at least this speedup and the model has this many removable blocks
HINT_MIN_SPEEDUP = 1.4
HINT_MIN_BLOCKS = 4


def depth_hint(model: nn.Module, example: torch.Tensor, frozen_modules: Sequence[str], speedup_asked: float
               ) -> str | None:
    """A line suggesting ``--prune-blocks`` when this model and budget resemble the cases where it was measured
    to help, else None.

    Depth pruning is not the default: its greedy order costs minutes on a small CPU (about 5 min against 2 min
    for channels alone on cifar-resnet56), it applies only to identity-shortcut residual blocks, and it was
    measured on one family. Where it was measured, it kept more accuracy at 1.5x and 2x than channel pruning
    alone (docs/benchmarks.md, "Pruning at a measured budget": no fine-tuning, validation top-1 86.75% vs
    72.09% at 1.5x, 78.43% vs 51.43% at 2x; with 4 distillation epochs at 2x, 93.55% for blocks).
    """
    if speedup_asked < HINT_MIN_SPEEDUP:
        return None
    blocks = find_removable_blocks(model, example, frozen_modules)
    if len(blocks) < HINT_MIN_BLOCKS:
        return None
    return (f"this model has {len(blocks)} residual blocks edgeprune can remove whole; at budgets of 1.5x and more, "
            "--prune-blocks kept more accuracy than channel pruning alone where it was measured (ResNet-56 at 2x: "
            "78.4% vs 51.4% without fine-tuning; docs/benchmarks.md), at the cost of a few minutes of ordering")


#: measures a candidate: (names of the removed blocks, the candidate model, round kind) -> latency in ms
BlockMeasure = Callable[[list[str], nn.Module, str], float]


@dataclass
class DepthResult:
    """The outcome of the depth stage.

    Attributes:
        model: the model channel pruning starts from (the original when nothing was removed).
        removed: dotted names of the removed blocks, in model order.
        latency_ms: the latency of ``model`` as measured (or predicted) in the stage.
        removable: how many blocks could have been removed.
        distortion: per block of the greedy order, the output distortion (KL divergence) once it and the
            blocks before it are removed.
    """

    model: nn.Module
    removed: list[str]
    latency_ms: float
    removable: int = 0
    distortion: dict[str, float] = field(default_factory=dict)


def prune_depth(model: nn.Module, example: torch.Tensor, calibration: torch.Tensor, frozen_modules: Sequence[str],
                baseline_ms: float, target_ms: float, measure: BlockMeasure, near_miss_share: float = NEAR_MISS_SHARE,
                distortion_of: OutputDistortion = class_kl, device: torch.device | None = None) -> DepthResult:
    """Remove the fewest least-distorting blocks whose measured latency is at most ``target_ms``.

    Each block count is measured as a ``depth`` round; a near miss (at most ``near_miss_share`` over the target)
    gets a ``depth-recheck`` round and the mean of the two readings decides (pass 0 where latencies are
    predicted). ``distortion_of`` orders the blocks (the task's output distortion; class KL for classifiers), run on
    ``device`` (``--train-device``; the CPU by default)."""
    blocks = find_removable_blocks(model, example, frozen_modules)
    if not blocks:
        log.warning("--prune-blocks: the model has no residual block with an identity shortcut; "
                    "pruning channels only")
        return DepthResult(model, [], baseline_ms)
    if baseline_ms <= target_ms:
        return DepthResult(model, [], baseline_ms, len(blocks))
    limit = max(1, int(len(blocks) * MAX_REMOVED_SHARE))
    with placed_on(model, device or torch.device("cpu")):
        order, distortion = greedy_removal_order(model, blocks, calibration[:DISTORTION_IMAGES], limit,
                                                 recalibration=calibration, distortion_of=distortion_of)
    log.info("depth: %d removable residual blocks; removing up to %d to reach %.3f ms", len(blocks), limit,
             target_ms)
    tried: dict[int, tuple[float, nn.Module, list[str]]] = {}

    def at(count: int) -> float:
        chosen = set(order[:count])
        names = [n for n in blocks if n in chosen]  # model order, for the plan and the report
        candidate = remove_blocks(model, names)
        recalibrate_batchnorm(candidate, calibration)
        latency_ms = measure(names, candidate.eval(), "depth")
        if target_ms < latency_ms <= target_ms * (1 + near_miss_share):
            latency_ms = (latency_ms + measure(names, candidate, "depth-recheck")) / 2
        tried[count] = (latency_ms, candidate, names)
        return latency_ms

    if at(limit) > target_ms:
        chosen = limit
        log.info("depth: %d blocks removed still measure %.3f ms; channel pruning does the rest",
                 limit, tried[limit][0])
    else:
        over, under = 0, limit  # latency(over) > target >= latency(under)
        while under - over > 1:
            middle = (over + under) // 2
            if at(middle) <= target_ms:
                under = middle
            else:
                over = middle
        chosen = under
    latency_ms, chosen_model, names = tried[chosen]
    log.info("depth: removed %d of %d blocks → %.3f ms", len(names), len(blocks), latency_ms)
    return DepthResult(chosen_model, names, latency_ms, len(blocks), distortion)

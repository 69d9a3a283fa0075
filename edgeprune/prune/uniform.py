"""The uniform baseline: every prunable group keeps the same fraction of its channels, the most important ones."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from edgeprune.prune.groups import ChannelGroup


def aligned_width(width: int, keep_ratio: float, alignment: int) -> int:
    """``keep_ratio * width`` rounded to a multiple of ``alignment``, at least one step, at most ``width``.

    >>> aligned_width(64, 0.5, 8), aligned_width(64, 0.01, 8), aligned_width(10, 0.5, 1)
    (32, 8, 5)
    """
    step = max(1, alignment)
    target = keep_ratio * width
    kept = int(math.floor(target / step + 0.5)) * step  # round half up, so ratio 1.0 keeps every channel
    if keep_ratio >= 1.0:
        return width
    return min(width, max(min(step, width), kept))


def uniform_keep(
    groups: Sequence[ChannelGroup],
    scores: Mapping[str, np.ndarray],
    keep_ratio: float,
    alignment: int = 1,
) -> dict[str, list[int]]:
    """For each group, the indices of its ``aligned_width`` highest-scoring channels (sorted); a group cut in
    whole runs keeps a multiple of its run length, ranked by run."""
    if not 0 < keep_ratio <= 1 or math.isnan(keep_ratio):
        raise ValueError(f"keep ratio must be in (0, 1], got {keep_ratio}")
    keep: dict[str, list[int]] = {}
    for group in groups:
        n_keep = aligned_width(group.width, keep_ratio, group.step(alignment))
        order = np.argsort(-group.unit_scores(np.asarray(scores[group.name], dtype=np.float64)), kind="stable")
        keep[group.name] = sorted(int(i) for i in order[:n_keep])
    return keep

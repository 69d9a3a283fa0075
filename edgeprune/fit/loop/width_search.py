"""Latency-budgeted width search: keep the most importance whose predicted latency fits the budget.

A greedy solution of the knapsack that HALP (Shen et al. 2022) formulates, with NetAdapt's (Yang et al.
2018) one-step-at-a-time shrinking: starting from the full model, repeatedly remove one alignment step of
channels from the group where that costs the least importance per millisecond saved, until the latency
model predicts the budget is met; then steps that still fit are given back, most importance per millisecond
first, so the slack the last step left is not wasted. Because the latency model knows the runtime's width
steps, the search prunes unevenly where that is cheap and avoids widths that save nothing.

Importance is made comparable across groups by dividing each group's scores by their mean, unless the
criterion's scores are already globally comparable (NISP propagates one final-response importance through
the whole network, so its scores are). A group cut in whole runs (the blocks of a grouped convolution)
ranks runs by their mean score and steps by a multiple of the run length.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeprune.latency.predictor import LatencyModel
from edgeprune.prune.groups import ChannelGroup

log = logging.getLogger(__name__)

_EPS_MS = 1e-6


@dataclass(frozen=True)
class SearchResult:
    """The widths chosen, which channels they keep, and the prediction for them."""

    widths: dict[str, int]
    keep: dict[str, list[int]]
    predicted_ms: float
    importance_kept: float
    feasible: bool
    steps: int


def normalised_scores(
    groups: Sequence[ChannelGroup], scores: Mapping[str, np.ndarray], globally_comparable: bool
) -> dict[str, np.ndarray]:
    """Scores made comparable across groups (each group's mean becomes 1 unless already comparable); a group
    cut in runs gives each channel its run's mean (:meth:`~edgeprune.prune.groups.ChannelGroup.unit_scores`)."""
    out = {}
    for g in groups:
        s = g.unit_scores(np.asarray(scores[g.name], dtype=np.float64).clip(min=0.0))
        if not globally_comparable:
            mean = float(s.mean())
            s = s / mean if mean > 0 else np.ones_like(s)
        out[g.name] = s
    return out


def keep_top(scores: np.ndarray, width: int) -> list[int]:
    """Indices of the ``width`` highest scores, sorted."""
    order = np.argsort(-scores, kind="stable")
    return sorted(int(i) for i in order[:width])


def _refill(groups: Sequence[ChannelGroup], sorted_scores: Mapping[str, np.ndarray], latency: LatencyModel,
            budget_ms: float, step_of: Mapping[str, int], widths: dict[str, int], current: float) -> tuple[float, int]:
    """Give back, most importance per millisecond first, every step that still fits the budget.

    The descent's last step can overshoot by far: one step of a group that sets many layers' widths (a
    ResNet's residual stream) saves several percent at once. Adding back the cheaper steps of other groups
    spends that slack on importance. Changes ``widths`` in place; returns (predicted ms, steps added).
    """
    added = 0
    while True:
        best: tuple[float, str, int, float] | None = None
        for g in groups:
            w = widths[g.name]
            if w >= g.width:
                continue
            step = step_of[g.name]
            new_w = min(g.width, (w // step + 1) * step)
            trial = dict(widths)
            trial[g.name] = new_w
            predicted = latency.predict(trial)
            if predicted > budget_ms:
                continue
            value = float(sorted_scores[g.name][w:new_w].sum()) / max(predicted - current, _EPS_MS)
            if best is None or value > best[0]:
                best = (value, g.name, new_w, predicted)
        if best is None:
            return current, added
        _, name, new_w, current = best
        widths[name] = new_w
        added += 1


def latency_budgeted_widths(
    groups: Sequence[ChannelGroup],
    scores: Mapping[str, np.ndarray],
    latency: LatencyModel,
    budget_ms: float,
    alignment: int,
    globally_comparable: bool = False,
    start: Mapping[str, int] | None = None,
) -> SearchResult:
    """Greedy search for per-group widths (multiples of ``alignment``) with predicted latency <= budget.

    The descent starts from the full widths, or from ``start`` (an upward search: a measured candidate's widths,
    which the result then contains whenever they fit the budget, since only the refill changes them).
    Returns the smallest model's widths with ``feasible=False`` when even that is predicted over budget.
    """
    step_of = {g.name: g.step(alignment) for g in groups}
    norm = normalised_scores(groups, scores, globally_comparable)
    sorted_scores = {g.name: np.sort(norm[g.name])[::-1] for g in groups}  # high to low
    widths = {g.name: g.width for g in groups} if start is None else {g.name: start[g.name] for g in groups}
    minimum = {g.name: g.min_width(alignment) for g in groups}
    current = latency.predict(widths)
    steps = 0
    while current > budget_ms:
        best: tuple[float, str, int, float] | None = None
        for g in groups:
            w = widths[g.name]
            if w <= minimum[g.name]:
                continue
            step = step_of[g.name]
            new_w = max(minimum[g.name], (w - 1) // step * step if w % step else w - step)
            trial = dict(widths)
            trial[g.name] = new_w
            predicted = latency.predict(trial)
            saved = current - predicted
            lost = float(sorted_scores[g.name][new_w:w].sum())
            # Prefer real savings: a step that saves nothing is only taken when nothing else is left.
            cost = lost / saved if saved > _EPS_MS else float("inf") if lost > 0 else 1e12
            if best is None or cost < best[0] or (cost == best[0] and saved > current - best[3]):
                best = (cost, g.name, new_w, predicted)
        if best is None:
            break
        _, name, new_w, current = best
        widths[name] = new_w
        steps += 1
    if current <= budget_ms:
        current, refilled = _refill(groups, sorted_scores, latency, budget_ms, step_of, widths, current)
        steps += refilled
    keep = {g.name: keep_top(norm[g.name], widths[g.name]) for g in groups}
    kept = float(sum(norm[g.name][keep[g.name]].sum() for g in groups))
    return SearchResult(widths, keep, current, kept, current <= budget_ms, steps)

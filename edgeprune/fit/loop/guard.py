"""The uniform-cut guard: the latency search's candidate against one keep ratio for every group, at the same
measured latency; the candidate whose output moves least is the one recovered and shipped.

Why: the latency search spends the budget where its latency model says channels are cheapest to keep. Where the model
is wrong (OpenVINO's and LiteRT's one-kernel probes, issue 39) or where importance per millisecond is a poor proxy
for accuracy (a detector's thin residual streams), the search's widths can lose badly to a plain uniform cut: on the
shapes detector at 2x with 3 fine-tune epochs, 36.0 mAP50-95 against the uniform cut's 77.7 on OpenVINO. Both
candidates are measured on the target anyway, so the guard measures the uniform cut that meets the same latency as
the search's candidate and compares the two by the output distortion on calibration images, each rebuilt as the
recovery leaves it before fine-tuning (:mod:`edgeprune.fit.candidate_distortion`). The default allocation is then
never worse than the uniform cut by that measure, and is better wherever the latency model is right.

The uniform ratio is searched from the search candidate's kept share of channels: at most :data:`GUARD_ROUNDS`
measured rounds (kind ``guard``; they do not count against ``--max-rounds``, which bounds the search itself). The
guard runs once per closed loop, on the first candidate measured within the budget; when the uniform cut wins and
later misses a confirmation, the next narrower uniform ratio measured within the budget follows, then the search's
own candidate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeprune.fit.loop.base import Allocation, Candidate, RoundsExhausted, kept_fraction
from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.uniform import uniform_keep

log = logging.getLogger(__name__)

#: measured rounds the guard may spend finding the widest uniform cut within the search candidate's latency
GUARD_ROUNDS = 5
#: the round kind of the guard's measurements (in the report's rounds; not counted against --max-rounds)
GUARD_KIND = "guard"

MeasureFn = Callable[[dict[str, list[int]], str, dict[str, Any]], float]
DistortionFn = Callable[[dict[str, list[int]]], float]


class UniformGuard:
    """Wraps an allocation (the latency search); :meth:`settle` puts its candidate against the uniform cut."""

    def __init__(self, search: Allocation, groups: Sequence[ChannelGroup], scores: Mapping[str, np.ndarray],
                 alignment: int, measure: MeasureFn, distortion: DistortionFn) -> None:
        self.search, self.groups, self.scores, self.alignment = search, list(groups), scores, alignment
        self.measure, self.distortion = measure, distortion
        self.target_ms = math.nan
        self.start_ms = math.nan
        #: what the comparison found (None until a candidate was settled), for report.json's method
        self.outcome: dict[str, Any] | None = None
        self._uniform_active = False
        #: the search's candidate, kept while the uniform cut is active (offered once the uniform ones run out)
        self._search_candidate: Candidate | None = None
        #: uniform candidates measured within the ceiling, narrowest first (the last is the widest)
        self._feasible: list[Candidate] = []

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.search.name

    @property
    def latency(self) -> Any:
        """The wrapped search's latency model (the report's predicted per-layer breakdown reads it)."""
        return getattr(self.search, "latency", None)

    def first(self, baseline_ms: float, budget_ms: float, target_ms: float) -> Candidate:
        self.start_ms, self.target_ms = baseline_ms, target_ms
        return self.search.first(baseline_ms, budget_ms, target_ms)

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        if not self._uniform_active:
            return self.search.after_miss(candidate, measured_ms)
        if self._feasible:
            return self._feasible.pop()
        self._uniform_active = False  # no narrower uniform cut measured within the budget: the search's own
        fallback, self._search_candidate = self._search_candidate, None
        if fallback is not None:
            log.info("uniform-cut guard: the uniform cut missed when confirmed; going on with the latency search's "
                     "candidate (%.3f ms)", fallback.measured_ms)
        return fallback

    def after_undershoot(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        return None if self._uniform_active else self.search.after_undershoot(candidate, measured_ms)

    def settle(self, candidate: Candidate, budget_ms: float) -> Candidate:
        """``candidate`` or the uniform cut measured within the same latency, whichever distorts the output less.

        Only the first pruned candidate measured within ``budget_ms`` is compared; later ones pass as they are.
        """
        if self.outcome is not None or not candidate.keep or candidate.measured_ms is None \
                or candidate.measured_ms > budget_ms:
            return candidate
        ceiling_ms = min(budget_ms, max(self.target_ms, candidate.measured_ms))
        widths = {g.name: g.width for g in self.groups}
        searched_share = kept_fraction(candidate.keep, widths)
        uniform = self._widest_uniform(ceiling_ms, searched_share)
        self.outcome = {"ceiling_ms": ceiling_ms, "latency_search": {
            "kept_channels": searched_share, "measured_ms": candidate.measured_ms}}
        if uniform is None:
            self.outcome["chosen"] = "latency_search"
            self.outcome["reason"] = (f"no uniform cut measured within {ceiling_ms:.3f} ms in {GUARD_ROUNDS} "
                                      "rounds")
            log.info("uniform-cut guard: %s; keeping the latency search's candidate", self.outcome["reason"])
            return candidate
        searched_distortion, uniform_distortion = self.distortion(candidate.keep), self.distortion(uniform.keep)
        self.outcome["latency_search"]["distortion"] = searched_distortion
        self.outcome["uniform"] = {"keep_ratio": uniform.info["keep_ratio"],
                                   "kept_channels": kept_fraction(uniform.keep, widths),
                                   "measured_ms": uniform.measured_ms, "distortion": uniform_distortion}
        uniform_wins = uniform_distortion < searched_distortion
        self.outcome["chosen"] = "uniform" if uniform_wins else "latency_search"
        log.info("uniform-cut guard: latency search %.1f%% of channels, %.3f ms, output distortion %.4g; uniform cut "
                 "%.1f%%, %.3f ms, %.4g: shipping the %s", 100 * searched_share, candidate.measured_ms,
                 searched_distortion, 100 * self.outcome["uniform"]["kept_channels"], uniform.measured_ms,
                 uniform_distortion, "uniform cut" if uniform_wins else "latency search's candidate")
        if not uniform_wins:
            return candidate
        self._uniform_active, self._search_candidate = True, candidate
        return uniform

    def _widest_uniform(self, ceiling_ms: float, start_ratio: float) -> Candidate | None:
        """The widest uniform cut measured within ``ceiling_ms`` in at most :data:`GUARD_ROUNDS` measurements,
        starting at ``start_ratio``: down by the square root of the latency ratio (a convolution's cost goes with
        the product of its input and output widths) until one fits, then bisected against the narrowest miss."""
        by_widths: dict[tuple[int, ...], Candidate] = {}
        fits: list[Candidate] = []
        feasible: list[float] = []
        misses: list[float] = [1.0]  # the unpruned model missed the search target (else nothing was pruned)
        ratio, rounds = min(max(start_ratio, 1e-6), 1.0), 0
        resolution = 0.5 / max(g.width for g in self.groups)
        for _ in range(3 * GUARD_ROUNDS):  # repeated widths cost no round; bounded all the same
            keep = uniform_keep(self.groups, self.scores, ratio, self.alignment)
            key = tuple(len(keep[g.name]) for g in self.groups)
            if key not in by_widths:
                if rounds >= GUARD_ROUNDS:
                    break
                try:
                    ms = self.measure(keep, GUARD_KIND, {"keep_ratio": ratio})
                except RoundsExhausted:
                    break
                rounds += 1
                by_widths[key] = Candidate(keep, {"keep_ratio": ratio, "guard": True}, ms)
            measured = by_widths[key]
            assert measured.measured_ms is not None
            if measured.measured_ms <= ceiling_ms:
                feasible.append(ratio)
                if measured not in fits:
                    fits.append(measured)
            else:
                misses.append(ratio)
            high = min(misses)
            if fits:
                low = max(feasible)
                if high - low <= resolution:
                    break
                ratio = (low + high) / 2
            else:
                ratio *= min(0.95, math.sqrt(ceiling_ms / measured.measured_ms))
        if not fits:
            return None
        fits.sort(key=lambda c: kept_fraction(c.keep, {g.name: g.width for g in self.groups}))
        self._feasible = fits[:-1]
        return fits[-1]

    def method(self) -> dict[str, Any]:
        return {**self.search.method(), "uniform_guard": self.outcome}

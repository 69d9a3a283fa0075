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

Every search candidate measured within the budget is compared (the uniform cuts already measured are reused). The
uniform ratio is searched from the search candidate's kept share of channels: at most :data:`GUARD_ROUNDS` measured
rounds per comparison (rechecks aside) and :data:`GUARD_ROUNDS_TOTAL` in all (kind ``guard``; they do not count against
``--max-rounds``, which bounds the search itself); a uniform cut measured just over the ceiling is measured once
more and the mean decides (:data:`NEAR_MISS_SHARE`). When the uniform cut wins and then misses its confirmation, the
next narrower uniform cut within the same latency is compared with the search's candidate in its place; the search
goes on only when the search's candidate wins or no uniform cut is left.
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

#: measured rounds one comparison may spend finding the widest uniform cut within the search candidate's latency
GUARD_ROUNDS = 5
#: measured rounds the guard may spend in one closed loop, rechecks of near misses included
GUARD_ROUNDS_TOTAL = 10
#: the round kinds of the guard's measurements and of its rechecks of near misses (in the report's rounds; not
#: counted against --max-rounds)
GUARD_KIND, GUARD_RECHECK_KIND = "guard", "guard-recheck"
GUARD_KINDS = (GUARD_KIND, GUARD_RECHECK_KIND)
#: a uniform cut measured at most this share over the ceiling is measured once more and the mean of the two decides
#: (as depth pruning's near misses): on OpenVINO here one reading of the same model moved by up to 13%, and a single
#: high reading sent the guard to a cut two alignment steps narrower than the uniform bisection's (60.3 against
#: 72.1 mAP50-95 on the shapes detector at 1.5x, no fine-tune)
NEAR_MISS_SHARE = 0.08
#: what the two families are called in report.json's ``uniform_guard``
SEARCH, UNIFORM = "latency_search", "uniform"

MeasureFn = Callable[[dict[str, list[int]], str, dict[str, Any]], float]
DistortionFn = Callable[[dict[str, list[int]]], float]
Widths = tuple[int, ...]


class UniformGuard:
    """Wraps an allocation (the latency search); :meth:`settle` puts its candidates against the uniform cut."""

    def __init__(self, search: Allocation, groups: Sequence[ChannelGroup], scores: Mapping[str, np.ndarray],
                 alignment: int, measure: MeasureFn, distortion: DistortionFn) -> None:
        self.search, self.groups, self.scores, self.alignment = search, list(groups), scores, alignment
        self.measure, self.distortion = measure, distortion
        self.target_ms = math.nan
        #: the last comparison and what the guard handed on after it (None until a candidate was compared)
        self.outcome: dict[str, Any] | None = None
        self.comparisons = 0
        self._widths = {g.name: g.width for g in self.groups}
        self._rounds = 0
        #: uniform cuts measured, by their widths: (the first ratio that gave them, the candidate)
        self._uniform: dict[Widths, tuple[float, Candidate]] = {}
        #: uniform widths whose confirmation missed the budget (never offered again)
        self._missed: set[Widths] = set()
        self._distortions: dict[Widths, float] = {}
        #: while a uniform cut is out for confirmation: the search's candidate it was compared with, and the ceiling
        self._rival: Candidate | None = None
        self._ceiling_ms = math.nan

    @property
    def name(self) -> str:
        """The wrapped search's name (the report's allocation)."""
        return self.search.name

    @property
    def latency(self) -> Any:
        """The wrapped search's latency model (the report's predicted per-layer breakdown reads it)."""
        return getattr(self.search, "latency", None)

    def _key(self, keep: dict[str, list[int]]) -> Widths:
        return tuple(len(keep[g.name]) if g.name in keep else g.width for g in self.groups)

    def _share(self, keep: dict[str, list[int]]) -> float:
        return kept_fraction(keep, self._widths)

    def first(self, baseline_ms: float, budget_ms: float, target_ms: float) -> Candidate:
        self.target_ms = target_ms
        return self.search.first(baseline_ms, budget_ms, target_ms)

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        if not candidate.info.get("guard"):
            return self.search.after_miss(candidate, measured_ms)
        self._missed.add(self._key(candidate.keep))  # a uniform cut missed its confirmation
        rival, self._rival = self._rival, None
        narrower = self._widest_uniform(self._ceiling_ms, candidate.info["keep_ratio"], below=self._share(candidate.keep))
        if rival is None:
            return narrower
        if narrower is None:
            log.info("uniform-cut guard: the uniform cut missed when confirmed and no narrower one measured within "
                     "%.3f ms; going on with the latency search's candidate (%.3f ms)", self._ceiling_ms,
                     rival.measured_ms)
            self._hand_on(SEARCH, "the uniform cut missed its confirmation and no narrower one was measured within "
                                  "the latency")
            return rival
        return self._compare(rival, narrower, self._ceiling_ms, "after the wider uniform cut missed its confirmation")

    def after_undershoot(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        return None if candidate.info.get("guard") else self.search.after_undershoot(candidate, measured_ms)

    def settle(self, candidate: Candidate, budget_ms: float) -> Candidate:
        """``candidate`` or the uniform cut measured within the same latency, whichever distorts the output less.

        Uniform cuts (offered after a miss) and the unpruned model pass as they are."""
        if not candidate.keep or candidate.info.get("guard") or candidate.measured_ms is None \
                or candidate.measured_ms > budget_ms:
            return candidate
        ceiling_ms = min(budget_ms, max(self.target_ms, candidate.measured_ms))
        uniform = self._widest_uniform(ceiling_ms, self._share(candidate.keep))
        if uniform is None:
            self.comparisons += 1
            self.outcome = {"ceiling_ms": ceiling_ms, SEARCH: self._facts(candidate), "comparisons": self.comparisons}
            self._hand_on(SEARCH, f"no uniform cut was measured within {ceiling_ms:.3f} ms in the guard's rounds")
            log.info("uniform-cut guard: %s; keeping the latency search's candidate", self.outcome["reason"])
            return candidate
        return self._compare(candidate, uniform, ceiling_ms, "")

    def _compare(self, searched: Candidate, uniform: Candidate, ceiling_ms: float, when: str) -> Candidate:
        """The less distorting of ``searched`` and ``uniform`` (both measured within ``ceiling_ms``)."""
        self.comparisons += 1
        self.outcome = {"ceiling_ms": ceiling_ms, SEARCH: self._facts(searched), UNIFORM: self._facts(uniform),
                        "comparisons": self.comparisons}
        uniform_wins = self.outcome[UNIFORM]["distortion"] < self.outcome[SEARCH]["distortion"]
        log.info("uniform-cut guard%s: latency search %.1f%% of channels, %.3f ms, output distortion %.4g; uniform cut "
                 "%.1f%%, %.3f ms, %.4g: going on with the %s", f" ({when})" if when else "",
                 100 * self.outcome[SEARCH]["kept_channels"], searched.measured_ms,
                 self.outcome[SEARCH]["distortion"], 100 * self.outcome[UNIFORM]["kept_channels"],
                 uniform.measured_ms, self.outcome[UNIFORM]["distortion"],
                 "uniform cut" if uniform_wins else "latency search's candidate")
        if not uniform_wins:
            self._hand_on(SEARCH, "less output distortion")
            return searched
        self._rival, self._ceiling_ms = searched, ceiling_ms
        self._hand_on(UNIFORM, "less output distortion")
        return uniform

    def _hand_on(self, family: str, reason: str) -> None:
        assert self.outcome is not None
        self.outcome.update({"chosen": family, "reason": reason})

    def _facts(self, candidate: Candidate) -> dict[str, Any]:
        key = self._key(candidate.keep)
        if key not in self._distortions:
            self._distortions[key] = self.distortion(candidate.keep)
        facts = {"kept_channels": self._share(candidate.keep), "measured_ms": candidate.measured_ms,
                 "distortion": self._distortions[key]}
        return {**facts, "keep_ratio": candidate.info["keep_ratio"]} if "keep_ratio" in candidate.info else facts

    def _measured(self, ratio: float) -> Candidate | None:
        """The uniform cut at ``ratio``, measured (or reused); None when the guard's rounds are spent."""
        keep = uniform_keep(self.groups, self.scores, ratio, self.alignment)
        key = self._key(keep)
        if key not in self._uniform:
            if self._rounds >= GUARD_ROUNDS_TOTAL:
                return None
            try:
                ms = self.measure(keep, GUARD_KIND, {"keep_ratio": ratio})
            except RoundsExhausted:
                return None
            self._rounds += 1
            self._uniform[key] = (ratio, Candidate(keep, {"keep_ratio": ratio, "guard": True}, ms))
        return self._uniform[key][1]

    def _recheck(self, candidate: Candidate, ceiling_ms: float) -> None:
        """Measure a near miss of ``ceiling_ms`` once more (a round) and keep the mean of the two readings."""
        assert candidate.measured_ms is not None
        if not ceiling_ms < candidate.measured_ms <= ceiling_ms * (1 + NEAR_MISS_SHARE) or \
                candidate.info.get("rechecked") or self._rounds >= GUARD_ROUNDS_TOTAL:
            return
        try:
            again = self.measure(candidate.keep, GUARD_RECHECK_KIND, dict(candidate.info))
        except RoundsExhausted:
            return
        self._rounds += 1
        candidate.info["rechecked"] = True
        candidate.measured_ms = (candidate.measured_ms + again) / 2

    def _widest_uniform(self, ceiling_ms: float, start_ratio: float, below: float = 1.0) -> Candidate | None:
        """The widest uniform cut measured within ``ceiling_ms`` keeping less than ``below`` of the channels and
        not missed in a confirmation: the ones measured already, then at most :data:`GUARD_ROUNDS` measurements,
        from ``start_ratio`` down by the square root of the latency ratio (a convolution's cost goes with the
        product of its input and output widths) until one fits, then bisected against the narrowest miss."""
        def fits(c: Candidate) -> bool:
            return c.measured_ms is not None and c.measured_ms <= ceiling_ms and \
                self._key(c.keep) not in self._missed and self._share(c.keep) < below

        feasible = [r for r, c in self._uniform.values() if fits(c)]
        misses = [1.0] + [r for r, c in self._uniform.values() if not fits(c)]
        ratio, spent = min(max(start_ratio, 1e-6), 1.0), len(self._uniform)  # rechecks do not count here
        resolution = 0.5 / max(g.width for g in self.groups)
        for _ in range(3 * GUARD_ROUNDS):  # repeated widths cost no round; bounded all the same
            if feasible:
                low = max(feasible)
                high = min((r for r in misses if r > low), default=1.0)
                if high - low <= resolution:
                    break
                ratio = (low + high) / 2
            if len(self._uniform) - spent >= GUARD_ROUNDS:
                break
            measured = self._measured(ratio)
            if measured is None:
                break
            self._recheck(measured, ceiling_ms)
            assert measured.measured_ms is not None
            if fits(measured):
                feasible.append(ratio)
            else:
                misses.append(ratio)
                if not feasible:
                    ratio *= min(0.95, math.sqrt(ceiling_ms / max(measured.measured_ms, ceiling_ms * 1e-3)))
        found = [c for _, c in self._uniform.values() if fits(c)]
        return max(found, key=lambda c: self._share(c.keep)) if found else None

    def method(self) -> dict[str, Any]:
        return {**self.search.method(), "uniform_guard": self.outcome}

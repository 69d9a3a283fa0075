"""Export-and-measure of candidate models on the target, paired with the original.

Each candidate is exported with the target's backend, loaded with the target's threads and precision, and
timed. Once the original is measured (:meth:`CandidateMeasurer.set_reference`), every later measurement
times the candidate **against the original's artifact in alternating rounds** (:mod:`edgeprune.paired`)
where the timer can (this machine's runtime), and its figure in milliseconds is the paired ratio times an
anchor: the original's median at the start of the run for a relative budget (``60%``: the verdict is the
ratio itself), or the original's median over the whole run for an absolute one (``20ms``). The original's
medians over time are kept (:attr:`CandidateMeasurer.reference_medians`) and a change of more than
:data:`DRIFT_SHARE` is said on the terminal and in the report. Through an agent, the pairs are timed on the
device (the agent keeps the original's artifact between requests); a timer that cannot pair times alone, with
a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeprune.environment import device_state
from edgeprune.errors import OversubscribedError
from edgeprune.latency.timers import ArtifactTimer, LocalTimer
from edgeprune.paired import PairedStats, PairingSpec, schedule
from edgeprune.progress import heartbeat
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec, monotonic_s, oversubscription_note

log = logging.getLogger(__name__)

SEARCH_TIMING = TimingSpec(warmup_runs=10, min_runs=50, min_seconds=1.0)
#: the confirmation gives the figures a run reports: its paired ratio is timed until its interval is within ±2.5%
CONFIRM_TIMING = TimingSpec(warmup_runs=20, min_runs=100, min_seconds=2.0, max_interval_share=0.05)

#: a change of the original's median by more than this share during a run is reported as drift
DRIFT_SHARE = 0.10
#: a paired figure whose interval is wider than this share of the ratio is flagged noisy
NOISY_INTERVAL_SHARE = 0.10
#: pauses (s) before timing again while the CPU stays oversubscribed; after the last, the run stops (exit 5)
OVERSUBSCRIBED_WAITS_S = (5.0, 15.0, 30.0)


@dataclass(frozen=True)
class Measurement:
    """A measured artifact; ``paired`` holds the readings against the original when it was timed in pairs."""

    artifact: Artifact
    stats: LatencyStats
    paired: PairedStats | None = None
    #: on ``--resume``, the paired ratio (candidate / original) the interrupted run journalled for this reading
    replayed_ratio: float | None = None
    #: the device (its agent's URL) that timed it, when measured through agents
    device: str | None = None


def pairing_for(spec: TimingSpec) -> PairingSpec:
    """The paired schedule that spends about ``spec.min_seconds`` on the pair (half on each side)."""
    return schedule(spec.min_seconds, spec.warmup_runs, spec.max_interval_share)


#: the name the original model is exported under
ORIGINAL = "original"


class CandidateMeasurer:
    """Exports candidates into ``work_dir`` and times them with ``backend`` on ``target``.

    ``original_backend`` exports the original (:data:`ORIGINAL`) when it differs from the candidates' (an
    INT8 run pairs INT8 candidates with the float original the user has); default ``backend``.
    """

    def __init__(self, backend: Backend, target: Target, example: torch.Tensor, work_dir: Path,
                 timer: ArtifactTimer | None = None, original_backend: Backend | None = None) -> None:
        self.backend = backend
        self.original_backend = original_backend or backend
        self.target = target
        self.timer: ArtifactTimer = timer or LocalTimer(backend, target)
        self.example = example
        self.work_dir = work_dir
        self.exports = 0
        self._counter = 0
        self.reference: Artifact | None = None
        self.anchor_on_run = False  # absolute budgets: anchor on the original's median over the run
        self.baseline_ms = float("nan")
        #: the original's medians over the run: (seconds since it was first measured, median ms)
        self.reference_medians: list[tuple[float, float]] = []
        #: per measurement, the share of its timed runs left out as disturbed (a thread waited for a CPU)
        self.disturbed_shares: list[float] = []
        #: the ms figure a verdict compares with; set by the run before each measurement that decides
        self.decision_ms: float | None = None
        self.drift_warned = False
        #: the device's clocks and temperatures beside each of those medians (empty where it exposes none)
        self.device_states: list[dict[str, object]] = []
        self._started_s = 0.0
        self._unpaired_warned = False
        self._lock = threading.Lock()  # a pool of devices times several artifacts at once (time() is thread-safe)

    def measure(self, model: nn.Module, name: str, spec: TimingSpec = SEARCH_TIMING,
                keep: Mapping[str, Sequence[int]] | None = None,
                check: Callable[[Artifact], object] | None = None) -> Measurement:
        """Export ``model`` as ``name`` and measure it; the artifact stays in the work directory.

        ``keep`` (the channels the candidate keeps) is not needed to measure; latency models that predict
        instead of measuring (:class:`~edgeprune.latency.predicted.PredictedMeasurer`) use it. ``check`` is
        called on the exported artifact before it is timed (it raises to refuse it).
        """
        with heartbeat(f"exporting the {name} model for {self.target.runtime}"):
            artifact = self.export(model, name)
            if check is not None:
                check(artifact)
        return self.time(artifact, spec)

    def export(self, model: nn.Module, name: str) -> Artifact:
        """Export ``model`` into the work directory under a numbered ``name``."""
        self._counter += 1
        path = self.work_dir / f"{self._counter:03d}-{name}.onnx"
        backend = self.original_backend if name == ORIGINAL else self.backend
        artifact = backend.export(model, self.example, path, self.target)
        self.exports += 1
        return artifact

    @property
    def quantizes(self) -> bool:
        """Whether candidates are exported differently from the original (an INT8 run)."""
        return self.backend is not self.original_backend

    def set_reference(self, original: Measurement, absolute_budget: bool) -> None:
        """Pair every later measurement with ``original``'s artifact; anchor on its median at the start
        (relative budget) or over the run (``absolute_budget``)."""
        self.reference = original.artifact
        self.anchor_on_run = absolute_budget
        self.baseline_ms = original.stats.median_ms
        self._started_s = monotonic_s()
        self.reference_medians = [(0.0, original.stats.median_ms)]
        self.device_states = [device_state()]

    def anchor_ms(self) -> float:
        """The original's median that paired ratios are multiplied by to give milliseconds."""
        if self.anchor_on_run and self.reference_medians:
            return float(np.median([ms for _, ms in self.reference_medians]))
        return self.baseline_ms

    @property
    def paired(self) -> bool:
        """Whether measurements are timed against the original."""
        return self.reference is not None and hasattr(self.timer, "time_paired")

    def time(self, artifact: Artifact, spec: TimingSpec = CONFIRM_TIMING) -> Measurement:
        """Measure an existing artifact: paired with the original when it is set and the timer can, else alone.

        Safe to call from several threads at once (a pool of devices: :mod:`edgeprune.latency.spread`); a
        paired reading is taken on one device, the original timed there too.
        """
        for wait_s in (*OVERSUBSCRIBED_WAITS_S, None):
            with heartbeat(f"timing {artifact.path.name}" + (" against the original" if self.paired else "")):
                measured = self._time_once(artifact, spec)
            stats, paired, device = measured
            with self._lock:
                self.disturbed_shares.append(stats.disturbed_share)
            if not stats.oversubscribed:
                break
            note = paired.oversubscription() if paired is not None else oversubscription_note(stats.disturbed_share)
            if wait_s is None:
                raise OversubscribedError(
                    f"the CPU is oversubscribed: {note}, in {len(OVERSUBSCRIBED_WAITS_S) + 1} tries; timings now "
                    "would favour the shorter model, so nothing was decided on them. Stop other work on the "
                    "machine (or measure with fewer --threads), then rerun the same command with --resume")
            log.warning("the CPU is oversubscribed (%s): timings now would favour the shorter model; waiting %.0f s, "
                        "then timing %s again", note, wait_s, artifact.path.name)
            time.sleep(wait_s)
        if paired is None:
            log.debug("%s: median %.3f ms (CV %.1f%%)", artifact.path.name, stats.median_ms, stats.cv * 100)
            return Measurement(artifact, stats, device=device)
        with self._lock:
            self._note_reference(paired)
            anchor = self.anchor_ms()
        median = paired.ratio * anchor
        scale = median / max(paired.candidate.median_ms, 1e-12)
        c = paired.candidate
        width = (paired.summary.high - paired.summary.low) / max(paired.ratio, 1e-12)
        stats = LatencyStats(median_ms=median, p90_ms=c.p90_ms * scale, mean_ms=c.mean_ms * scale,
                             min_ms=c.min_ms * scale, cv=c.cv, runs=c.runs, noisy=width > NOISY_INTERVAL_SHARE,
                             disturbed_share=paired.disturbed_share)
        log.debug("%s: ratio %.4f [%.4f, %.4f] over %d rounds x %.3f ms = %.3f ms%s", artifact.path.name,
                  paired.ratio, paired.summary.low, paired.summary.high, paired.summary.rounds, anchor, median,
                  f" on {device}" if device else "")
        return Measurement(artifact, stats, paired, device=device)

    def _time_once(self, artifact: Artifact, spec: TimingSpec) -> tuple[LatencyStats, PairedStats | None, str | None]:
        """One timing: ``(stats, paired or None, device)``; ``stats.oversubscribed`` when it is biased."""
        if self.reference is None or not self.paired:
            if self.reference is not None and not self._unpaired_warned:
                self._unpaired_warned = True
                log.warning("this timer cannot pair measurements with the original: each is timed alone, so a "
                            "change of the machine's speed during the run goes into the figures")
            time_where = getattr(self.timer, "time_where", None)
            stats, device = time_where(artifact, spec) if time_where else (self.timer.time(artifact, spec), None)
            return stats, None, device
        threshold = self.decision_ms / self.anchor_ms() if self.decision_ms is not None else None
        where = getattr(self.timer, "time_paired_where", None)
        paired, device = where(self.reference, artifact, pairing_for(spec), threshold) if where else \
            (self.timer.time_paired(self.reference, artifact, pairing_for(spec), threshold), None)  # type: ignore[attr-defined]
        return paired.candidate, paired, device

    def _note_reference(self, paired: PairedStats) -> None:
        at_s = (paired.round_started_s[0] + paired.round_started_s[-1]) / 2 - self._started_s
        ms = paired.reference_median_ms
        self.reference_medians.append((at_s, ms))
        self.device_states.append(device_state())
        change = ms / self.baseline_ms - 1
        if abs(change) > DRIFT_SHARE and not self.drift_warned:
            self.drift_warned = True
            what = ("absolute figures (ms) are the paired ratio times the original's median over the run"
                    if self.anchor_on_run else
                    "figures in ms are the paired ratio times the original's median at the start")
            log.warning("the machine's speed changed: the original runs at %.3f ms now, %+.0f%% against %.3f ms "
                        "at the start (%.0f s ago); verdicts use ratios timed side by side, so they hold; %s",
                        ms, 100 * change, self.baseline_ms, at_s, what)

    def drift(self) -> dict[str, object]:
        """The original's medians over the run and their largest change against the start."""
        changes = [ms / self.baseline_ms - 1 for _, ms in self.reference_medians] or [0.0]
        worst = max(range(len(changes)), key=lambda i: abs(changes[i]))
        return {
            "paired": self.paired,
            "anchor": ("the original's median over the run" if self.anchor_on_run else
                       "the original's median at the start of the run"),
            "reference_medians": [{"t_s": round(t, 2), "median_ms": ms, **({"device": s} if s else {})}
                                  for (t, ms), s in zip(self.reference_medians, self.device_states)],
            "max_change": changes[worst],
            "max_change_at_s": self.reference_medians[worst][0] if self.reference_medians else 0.0,
            "drift_detected": abs(changes[worst]) > DRIFT_SHARE,
            "threshold": DRIFT_SHARE,
            # runs left out because a thread of the process waited for a CPU (edgeprune.preemption)
            "disturbed_share_median": float(np.median(self.disturbed_shares)) if self.disturbed_shares else 0.0,
            "disturbed_share_max": max(self.disturbed_shares, default=0.0),
            "measurements": len(self.disturbed_shares),
        }

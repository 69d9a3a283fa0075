"""Assemble the fit report (report.json's content) from the facts a run collected."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeprune._version import __version__
from edgeprune.environment import machine_info, package_versions
from edgeprune.latency.timers import ArtifactTimer
from edgeprune.paired import CONFIDENCE, PairedStats
from edgeprune.prune.groups import ChannelGroup
from edgeprune.report.fit_result import REPORT_SCHEMA
from edgeprune.target import Target
from edgeprune.timing import LatencyStats


@dataclass
class ModelSide:
    """One side of the comparison (original or pruned): its measured latency, accuracy and size."""

    stats: LatencyStats
    top1: float | None
    macs: int
    params: int
    #: every metric of a task other than classification (a detector's ``map50_95``, ``map50``; a segmenter's
    #: ``miou``, ``pixel_accuracy``), fractions
    metrics: dict[str, float] | None = None


def latency_entry(stats: LatencyStats, timer: ArtifactTimer, target: Target, precision: str | None = None
                  ) -> dict[str, Any]:
    """A latency figure with everything needed to interpret it (``precision``: the artifact's, where it is not
    the target's, as for the float original of an INT8 run)."""
    return {**stats.to_dict(), "measured": timer.source.startswith("measured"), "source": timer.source, "machine": timer.machine().get("cpu"),
            "backend": target.runtime, "runtime_version": timer.runtime_version(), "device": target.device,
            "threads": target.threads, "precision": precision or target.precision,
            **({"expected_error": timer.machine().get("expected_error")} if timer.source == "predicted-profile" else {})}


def build_fit_report(
    *,
    out_dir: Path,
    files: list[str],
    model: dict[str, Any],
    target: Target,
    timer: ArtifactTimer,
    budget_ms: float,
    budget_spec: str,
    baseline: ModelSide,
    final: ModelSide,
    method: dict[str, Any],
    artifact: dict[str, Any],
    evaluation: dict[str, Any],
    parity: dict[str, Any],
    calibration: dict[str, Any],
    finetune: dict[str, Any],
    rounds: list[dict[str, Any]],
    exports: int,
    groups: list[dict[str, Any]],
    frozen: list[ChannelGroup],
    timings_s: dict[str, float],
) -> dict[str, Any]:
    """report.json's content (schema ``edgeprune.fit-report/1``)."""
    return {
        "schema": REPORT_SCHEMA,
        "edgeprune_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": ("budget met" if math.isfinite(budget_ms) else "no latency budget (size-only fit)")
        + ("" if timer.source.startswith("measured") else " (predicted, not measured)"),
        "out_dir": str(out_dir),
        "model": model,
        "target": json.loads(json.dumps(asdict(target))),  # tuples as lists: the report equals report.json
        "budget_ms": budget_ms if math.isfinite(budget_ms) else None,  # None: a size-only fit
        "budget_spec": budget_spec,
        "baseline": {"latency": latency_entry(baseline.stats, timer, target,
                                              target.float_precision if target.precision == "int8" else None),
                     "top1": baseline.top1,
                     "macs": baseline.macs, "params": baseline.params,
                     **({"metrics": baseline.metrics} if baseline.metrics is not None else {})},
        "final": {"latency": latency_entry(final.stats, timer, target), "top1": final.top1,
                  "macs": final.macs, "params": final.params,
                  **({"metrics": final.metrics} if final.metrics is not None else {})},
        # a speedup from predictions is not a measured one: the key says which it is
        ("speedup_measured" if timer.source.startswith("measured") else "speedup_predicted"):
            baseline.stats.median_ms / final.stats.median_ms,
        "mac_reduction": baseline.macs / max(final.macs, 1),
        "method": method,
        "artifact": artifact,
        "evaluation": evaluation,
        "parity": parity,
        "calibration": calibration,
        "finetune": finetune,
        "search": {"rounds": rounds, "exports": exports},
        "groups": groups,
        "frozen_groups": [{"name": g.name, "width": g.width, "reason": g.frozen_reason} for g in frozen],
        "files": {n: str(out_dir / n) for n in files},
        "environment": {"machine": machine_info(), "versions": package_versions(),
                        "measured_on": {"source": timer.source, "machine": timer.machine(),
                                        **({"devices": dict(timer.shares)} if hasattr(timer, "shares") else {})}},
        "timings_s": timings_s,
    }


def paired_speedup(final: PairedStats | None, drift: dict[str, Any] | None) -> dict[str, Any]:
    """report.json's fields for a run whose readings were paired with the original: the speedup as the
    paired ratio of the final artifact against the original (with its interval), and the original's medians
    over the run with the largest change (``measurement``). Empty when nothing was paired."""
    fields: dict[str, Any] = {}
    if drift is not None and drift.get("paired"):
        fields["measurement"] = drift
    if final is not None:
        s = final.summary
        fields["speedup_measured"] = 1.0 / s.ratio
        fields["speedup_interval"] = [1.0 / s.high, 1.0 / s.low]
        fields["speedup_method"] = (f"paired: median over {s.rounds} rounds of the original's median / the final "
                                    f"artifact's, timed in alternating rounds at the end of the run; "
                                    f"{100 * CONFIDENCE:.0f}% bootstrap interval")
        fields["speedup_disturbed"] = {"runs_left_out_share": final.disturbed_share,
                                       "rounds_left_out": final.rounds_left_out}
    return fields

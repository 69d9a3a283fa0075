"""Timing on the device: ``bench --device`` and ``validate --device`` through an ``edgeprune agent``.

The files are checked and loaded here first (so a broken file fails before any upload, and its input name and
shape are known), then uploaded; the agent times them with the target's runtime, threads and precision. Every
artifact after the first is timed against the first in alternating rounds on the device, as ``fit --device``
does: the agent keeps the first as its reference and pairs each later one with it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.agent.client import AgentClient, AgentMeasurement
from edgeprune.errors import InputError
from edgeprune.paired import schedule
from edgeprune.runtimes.base import Artifact
from edgeprune.target import Target
from edgeprune.timing import TimingSpec
from edgeprune.validate.bench import BenchRow
from edgeprune.validate.runners import LoadedArtifact, load_artifact

log = logging.getLogger(__name__)


def as_upload(loaded: LoadedArtifact) -> Artifact:
    """What the agent client uploads for a loaded artifact."""
    return Artifact(loaded.path, loaded.format, loaded.input_name, tuple(loaded.input_shape))


def device_description(client: AgentClient) -> str:
    """``the agent at URL (CPU name)``, for tables and reports."""
    machine = client.info().get("machine", {})
    cpu = machine.get("cpu", "unknown CPU") if isinstance(machine, dict) else "unknown CPU"
    return f"the agent at {client.url} ({cpu})"


def runtime_version_on(client: AgentClient, runtime: str) -> str:
    """The version of ``runtime`` the agent reports."""
    entry = client.info().get("runtimes", {}).get(runtime, {})
    return str(entry.get("version", "unknown")) if isinstance(entry, dict) else "unknown"


def bench_on_device(paths: Sequence[str | Path], target: Target, client: AgentClient,
                    threads: Sequence[int] | None = None, seconds: float = 2.0) -> list[BenchRow]:
    """:func:`~edgeprune.validate.bench.bench_artifacts`, timed on the agent's device (no kernel profile)."""
    if not paths:
        raise InputError("give at least one artifact to time")
    rows: list[BenchRow] = []
    where = device_description(client)
    for count in threads or [target.threads]:
        if count < 1:
            raise InputError(f"--threads must be positive, got {count}")
        run_target = dataclasses.replace(target, threads=count)
        loaded = [load_artifact(p, run_target) for p in paths]
        version = runtime_version_on(client, run_target.runtime)
        reference = as_upload(loaded[0])
        pairs = [client.measure_paired(reference, as_upload(other), run_target, schedule(seconds)) for other in loaded[1:]]
        if pairs:
            ref_rounds = [ms for p in pairs if p.paired for ms in p.paired.reference_round_ms]
            ref_median = float(np.median(ref_rounds))
            ref_p90 = max(p.paired.reference.p90_ms for p in pairs if p.paired)
        else:
            alone = client.measure(reference, run_target, TimingSpec(min_seconds=seconds)).stats
            ref_median, ref_p90 = alone.median_ms, alone.p90_ms
        rows.append(_row(loaded[0], version, count, ref_median, ref_p90, None, where))
        for other, measured in zip(loaded[1:], pairs):
            rows.append(_row(other, version, count, ref_median, ref_p90, measured, where))
    return rows


def _row(loaded: LoadedArtifact, version: str, threads: int, ref_median_ms: float, ref_p90_ms: float,
         measured: AgentMeasurement | None, where: str) -> BenchRow:
    common = dict(artifact=str(loaded.path), runtime=loaded.target.runtime, runtime_version=version, threads=threads,
                  precision=loaded.precision, top_kernels=None, measured_on=where)
    if measured is None or measured.paired is None:
        return BenchRow(median_ms=ref_median_ms, p90_ms=ref_p90_ms, ratio=1.0, ratio_low=1.0, ratio_high=1.0,
                        rounds=0, paired=None, **common)  # type: ignore[arg-type]
    p = measured.paired
    s = p.summary
    return BenchRow(median_ms=s.ratio * ref_median_ms,
                    p90_ms=p.candidate.p90_ms * ref_median_ms / max(p.reference_median_ms, 1e-12),
                    ratio=s.ratio, ratio_low=s.low, ratio_high=s.high, rounds=s.rounds,
                    paired={**p.to_dict(), "device_state": measured.device_state}, **common)  # type: ignore[arg-type]


def latency_on_device(loaded: LoadedArtifact, reference: LoadedArtifact | None, client: AgentClient,
                      seconds: float) -> dict[str, Any]:
    """``validate``'s latency entry for an artifact timed on the agent's device (paired with ``reference``'s
    artifact there when one is given)."""
    measured = client.measure(as_upload(loaded), loaded.target, TimingSpec(min_seconds=seconds))
    stats = measured.stats
    env = measured.environment
    latency: dict[str, Any] = {
        "source": "measured-agent", "measured_on": device_description(client), "backend": loaded.target.runtime,
        "runtime_version": str(env.get("runtime_version") or runtime_version_on(client, loaded.target.runtime)),
        "device": loaded.target.device, "threads": loaded.target.threads, "precision": loaded.precision,
        "batch_size": 1, "median_ms": stats.median_ms, "p90_ms": stats.p90_ms, "mean_ms": stats.mean_ms,
        "min_ms": stats.min_ms, "cv_fraction": stats.cv, "runs_count": stats.runs, "noisy": stats.noisy,
        "device_state": measured.device_state,
    }
    if reference is not None:
        paired = client.measure_paired(as_upload(reference), as_upload(loaded), loaded.target, schedule(seconds))
        if paired.paired is not None:
            latency["paired_with_reference"] = paired.paired.to_dict()
    return latency

"""``edgeprune bench``: time model files (ours or not) against the first one, in pairs, per thread count.

Each artifact after the first is timed against the first in alternating rounds
(:func:`edgeprune.paired.measure_paired`), so its ratio holds while the machine's speed changes; the
first one's median is taken over all its rounds. Where the runtime profiles its kernels (ONNX Runtime,
OpenVINO), the slowest kernels of each artifact are listed too.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import InputError
from edgeprune.paired import PairedStats, measure_paired, schedule
from edgeprune.target import Target
from edgeprune.timing import TimingSpec, measure_latency
from edgeprune.validate.runners import LoadedArtifact, load_artifact

log = logging.getLogger(__name__)

#: how per-kernel times are taken for the "top kernels" column (short: it only attributes time)
KERNEL_PROFILE_TIMING = TimingSpec(warmup_runs=5, min_runs=20, min_seconds=0.2, warn_noisy=False)


@dataclass
class BenchRow:
    """One artifact at one thread count: its latency, and its ratio to the first artifact with the interval."""

    artifact: str
    runtime: str
    runtime_version: str
    threads: int
    precision: str
    median_ms: float
    p90_ms: float
    ratio: float
    ratio_low: float
    ratio_high: float
    rounds: int
    top_kernels: list[dict[str, Any]] | None = None
    paired: dict[str, Any] | None = field(default=None, repr=False)
    #: where it was timed: ``here`` or the agent (:mod:`edgeprune.validate.on_device`)
    measured_on: str = "here"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return dataclasses.asdict(self)


def _input(loaded: LoadedArtifact) -> np.ndarray:
    return np.full(loaded.nchw_shape, 0.5, dtype=np.float32)


def _feed(loaded: LoadedArtifact) -> dict[str, np.ndarray]:
    return loaded.feed(_input(loaded))


def _top_kernels(loaded: LoadedArtifact, count: int) -> list[dict[str, Any]] | None:
    if count <= 0:
        return None
    try:
        layers = loaded.session.profile_layers(_feed(loaded), KERNEL_PROFILE_TIMING)
    except NotImplementedError:
        return None
    layers = sorted(layers, key=lambda layer: layer.ms, reverse=True)[:count]
    return [{"name": layer.name, "op_type": layer.op_type, "ms": layer.ms} for layer in layers]


def paired_against(reference: LoadedArtifact, candidate: LoadedArtifact, seconds: float,
                   x_reference: np.ndarray | None = None, x_candidate: np.ndarray | None = None) -> PairedStats:
    """``candidate`` timed against ``reference`` in alternating rounds (about ``seconds``), each on its NCHW input
    (default: a constant image of the artifact's own input shape)."""
    ref_feed = reference.feed(_input(reference) if x_reference is None else x_reference)
    cand_feed = candidate.feed(_input(candidate) if x_candidate is None else x_candidate)
    return measure_paired(lambda: reference.session.run(ref_feed), lambda: candidate.session.run(cand_feed),
                          schedule(seconds))


def bench_artifacts(paths: Sequence[str | Path], target: Target, threads: Sequence[int] | None = None,
                    seconds: float = 2.0, top_kernels: int = 3) -> list[BenchRow]:
    """Time every artifact in ``paths`` against the first, with ``target``'s runtime settings, once per thread
    count in ``threads`` (default: the target's); ``seconds`` is roughly the time spent on each pair."""
    if not paths:
        raise InputError("give at least one artifact to time")
    rows: list[BenchRow] = []
    for count in threads or [target.threads]:
        if count < 1:
            raise InputError(f"--threads must be positive, got {count}")
        run_target = dataclasses.replace(target, threads=count)
        loaded = [load_artifact(p, run_target) for p in paths]
        reference = loaded[0]
        pairs = [paired_against(reference, other, seconds) for other in loaded[1:]]
        if pairs:
            ref_rounds = [ms for p in pairs for ms in p.reference_round_ms]
            ref_median, ref_p90 = float(np.median(ref_rounds)), max(p.reference.p90_ms for p in pairs)
        else:
            ref_feed = _feed(reference)
            alone = measure_latency(lambda: reference.session.run(ref_feed), TimingSpec(min_seconds=seconds))
            ref_median, ref_p90 = alone.median_ms, alone.p90_ms
        rows.append(_row(reference, count, ref_median, ref_p90, 1.0, 1.0, 1.0, 0, top_kernels, None))
        for other, p in zip(loaded[1:], pairs):
            s = p.summary
            rows.append(_row(other, count, s.ratio * ref_median, p.candidate.p90_ms * ref_median
                             / max(p.reference_median_ms, 1e-12), s.ratio, s.low, s.high, s.rounds, top_kernels, p))
    return rows


def _row(loaded: LoadedArtifact, threads: int, median_ms: float, p90_ms: float, ratio: float, low: float,
         high: float, rounds: int, top_kernels: int, paired: PairedStats | None) -> BenchRow:
    return BenchRow(artifact=str(loaded.path), runtime=loaded.target.runtime, runtime_version=loaded.runtime_version,
                    threads=threads, precision=loaded.precision, median_ms=median_ms, p90_ms=p90_ms, ratio=ratio,
                    ratio_low=low, ratio_high=high, rounds=rounds, top_kernels=_top_kernels(loaded, top_kernels),
                    paired=paired.to_dict() if paired is not None else None)

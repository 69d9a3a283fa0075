"""The measured speed-up of a sparse ``.tflite`` file over its dense original: paired, interleaved, on LiteRT.

Whether XNNPACK's sparse path runs is decided inside the runtime (the rules in
:mod:`edgeprune.runtimes.litert.sparsity`), and nothing reachable from Python reports it, so the only evidence is
the timing: the dense and the sparse file are timed in alternating rounds (:func:`edgeprune.paired.measure_paired`)
on one interpreter each, same thread count, same input, and the speed-up is the inverse of the median per-round
ratio sparse / dense, with its bootstrap interval. An interval that holds 1.0 means "no measurable difference".
:func:`sparse_weights_delegated` adds the one structural fact the interpreter exposes: whether XNNPACK absorbed
the DENSIFY ops (their sparse inputs become inputs of its delegate node), which is what sets its sparse hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.export.sparse_cpu import CpuVerdict, sparse_kernels_on_cpu
from edgeprune.paired import PairedStats, PairingSpec, measure_paired, schedule
from edgeprune.runtimes.litert.backend import LiteRtSession
from edgeprune.runtimes.native_output import quiet_native_output


@dataclass(frozen=True)
class SparseSpeedup:
    """Dense time / sparse time (above 1: the sparse file is faster) with its interval, and what it rests on."""

    speedup: float
    low: float
    high: float
    rounds: int
    dense_ms: float
    sparse_ms: float
    threads: int
    cpu: CpuVerdict
    paired: PairedStats
    densify_delegated: bool | None = None

    @property
    def measurable(self) -> bool:
        """Whether the interval excludes 1.0 (a real difference either way)."""
        return not (self.low <= 1.0 <= self.high)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json."""
        return {"speedup": self.speedup, "speedup_low": self.low, "speedup_high": self.high, "rounds": self.rounds,
                "dense_ms": self.dense_ms, "sparse_ms": self.sparse_ms, "threads": self.threads,
                "sparse_kernels_on_cpu": self.cpu.enabled, "cpu_reason": self.cpu.reason,
                "densify_delegated": self.densify_delegated,
                "paired": self.paired.to_dict()}


def measure_sparse_speedup(dense_path: Path | str, sparse_path: Path | str, threads: int = 1,
                           spec: PairingSpec | None = None, seed: int = 0) -> SparseSpeedup:
    """Time the sparse file against the dense one in alternating rounds on this machine's LiteRT (XNNPACK).

    Both files must take the same single input; a seeded normal input is used (the arithmetic does not depend
    on the values). ``spec`` defaults to about 6 s of paired timing, extended while the interval is wider than
    5% of the ratio. Pin the process to one core (``taskset -c 0``) for 1-thread figures on a shared machine.
    """
    dense = LiteRtSession(Path(dense_path), threads)
    sparse = LiteRtSession(Path(sparse_path), threads)
    if dense.input_shape != sparse.input_shape:
        raise ValueError(f"the files take different inputs: {dense.input_shape} and {sparse.input_shape}")
    x = np.random.default_rng(seed).standard_normal(dense.input_shape).astype(np.float32)
    feed = {dense.input_name: x}
    stats = measure_paired(lambda: dense.run(feed), lambda: sparse.run(feed),
                           spec or schedule(6.0, max_interval_share=0.05), seed=seed)
    ratio = stats.summary
    return SparseSpeedup(speedup=1.0 / ratio.ratio, low=1.0 / ratio.high, high=1.0 / ratio.low, rounds=ratio.rounds,
                         dense_ms=stats.reference_median_ms, sparse_ms=float(np.median(stats.candidate_round_ms)),
                         threads=threads, cpu=sparse_kernels_on_cpu(), paired=stats,
                         densify_delegated=sparse_weights_delegated(sparse_path, threads))


def sparse_weights_delegated(path: Path | str, threads: int = 1) -> bool | None:
    """Whether every DENSIFY of the file was taken by the XNNPACK delegate (its sparse input is an input of a
    DELEGATE node), the condition under which the delegate hints XNNPACK to consider sparse inference. None when
    the file has no DENSIFY or the interpreter does not list its nodes (``_get_ops_details`` is not public API)."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_native_output():
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    try:
        ops = interpreter._get_ops_details()
    except AttributeError:
        return None
    sparse_inputs = {int(op["inputs"][0]) for op in ops if op["op_name"] == "DENSIFY"}
    if not sparse_inputs:
        return None
    delegated = {int(t) for op in ops if op["op_name"] == "DELEGATE" for t in op["inputs"]}
    return sparse_inputs <= delegated

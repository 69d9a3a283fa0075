"""An independent paired timing for end-to-end tests: two ONNX files timed alternately with ONNX Runtime.

Written apart from edgeprune's own paired measurement (plain loops, ONNX Runtime directly), so that a test
can check a reported ratio against a second method: A, B, A, B ... in rounds of ``runs`` calls, the median
of the per-round ratios of medians.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def _session(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    return session, {inp.name: np.full(inp.shape, 0.5, dtype=np.float32)}


#: rounds x runs of the default check: about 5 s of timing for a 1.4 ms model and its half (15 x 40, about
#: 1.3 s, read a 50% resnet56 at 0.537 in one CI run where fit's 2.5%-interval confirmation read under 0.5)
ROUNDS, RUNS = 41, 60


def independent_rounds(reference: Path, candidate: Path, rounds: int = ROUNDS, runs: int = RUNS
                       ) -> list[tuple[float, float]]:
    """Per-round medians (reference s, candidate s), one thread, the order alternating every round."""
    sessions = [_session(reference), _session(candidate)]
    for session, feed in sessions:
        for _ in range(20):
            session.run(None, feed)
    readings = []
    for index in range(rounds):
        order = sessions if index % 2 == 0 else sessions[::-1]
        medians = []
        for session, feed in order:
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                session.run(None, feed)
                times.append(time.perf_counter() - t0)
            medians.append(statistics.median(times))
        ref_s, cand_s = medians if index % 2 == 0 else medians[::-1]
        readings.append((ref_s, cand_s))
    return readings


def independent_ratio(reference: Path, candidate: Path, rounds: int = ROUNDS, runs: int = RUNS) -> float:
    """Median over rounds of (candidate's median / reference's median), one thread, alternating order."""
    return statistics.median(c / r for r, c in independent_rounds(reference, candidate, rounds, runs))

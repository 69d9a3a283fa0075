"""The machine-speed check of the pruning benchmark.

Every cell gets the same absolute budget in ms, derived from the original's latency measured once
(``baseline.json``). On a shared VM the machine's speed drifts: a cell run while it is 25% slower has to reach
a 2.5x speedup to meet a "2x" budget, and its reported speedup (against the saved baseline) understates what
it pruned. So before each cell the original is timed again and the cell waits (a few tries) until the machine
is back within ``SPEED_DRIFT`` of the saved figure, or stops with a clear message. Cells already run are
flagged in the rendered tables when the fit's own baseline measurement drifted by more than that
(``pruning_report.drift_note``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pruning_data import load_original
from pruning_report import SPEED_DRIFT

from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target

log = logging.getLogger("pruning_bench")

#: consecutive readings that must all be within the drift (the one farthest off counts): the machine's speed here
#: changes within seconds (2.54 ms then 3.05 ms ten seconds later, once)
READINGS = 3

def wait_for_baseline_speed(s: Any, baseline: dict[str, Any], tries: int = 5, pause_s: float = 60.0) -> float:
    """Time the original until :data:`READINGS` readings in a row are within ``SPEED_DRIFT`` of ``baseline`` (ms);
    return the one farthest off.

    Raises SystemExit after ``tries`` readings outside it, naming the drift (``--allow-speed-drift`` skips the
    check)."""
    target = load_target(s.target)
    bundle, example = load_original(s.model, s.weights, s.lossless)
    work = Path(tempfile.mkdtemp(prefix="pruning-speed-"))
    try:
        measurer = CandidateMeasurer(get_backend(target), target, example, work)
        artifact = measurer.export(bundle.model.eval(), "speed-check")
        for attempt in range(1, tries + 1):
            readings = [measurer.time(artifact, CONFIRM_TIMING).stats.median_ms for _ in range(READINGS)]
            ms = max(readings, key=lambda r: abs(r / float(baseline["baseline_ms"]) - 1))  # the farthest off
            ratio = ms / float(baseline["baseline_ms"])
            if abs(ratio - 1) <= SPEED_DRIFT:
                log.info("speed check: original %.3f ms (saved baseline %.3f ms)", ms, baseline["baseline_ms"])
                return ms
            log.warning("speed check %d/%d: original %.3f ms, %.0f%% off the saved %.3f ms baseline", attempt, tries,
                        ms, 100 * (ratio - 1), baseline["baseline_ms"])
            if attempt < tries:
                time.sleep(pause_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(f"this machine runs the original at {ms:.3f} ms, {100 * (ratio - 1):+.0f}% off the "
                     f"{baseline['baseline_ms']:.3f} ms baseline the budgets come from; run when it is idle, "
                     "or pass --allow-speed-drift")

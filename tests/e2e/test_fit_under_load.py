"""A fit while another process loads the machine on and off: the verdict and the speedup still hold.

The load generator busies a core for a few seconds, then idles, over and over, while ``fit`` runs. Afterwards,
with the load stopped, the test times the shipped artifact against the original's export itself, with ONNX
Runtime directly and its own interleaved loop (A, B, A, B ... in rounds of 40 runs, median of the per-round
ratios), and compares: the shipped model must be within the 60% budget by that independent timing too (5%
allowed for the two timings' own noise), and the speedup ``fit`` reported must agree with it within 10%.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from paired_timing import independent_ratio

import edgeprune
from edgeprune.runtimes.onnx_export import export_onnx
from edgeprune.train.default_weights import load_model

BUDGET_SHARE = 0.60
#: the independent timing's own noise: the shipped model may read this much over the budget share
VERDICT_TOLERANCE = 0.05
#: how far the reported speedup may be from the independent one
SPEEDUP_TOLERANCE = 0.10

LOAD_CODE = """
while True:
    end = time.perf_counter() + 4.0
    while time.perf_counter() < end:
        sum(i * i for i in range(10000))
    time.sleep(4.0)
"""


@pytest.fixture()
def on_off_load() -> Iterator[Callable[[], None]]:
    """Starts the load generator; the test calls the returned function to stop it (teardown stops it too)."""
    proc = subprocess.Popen([sys.executable, "-c", LOAD_CODE])

    def stop() -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

    try:
        yield stop
    finally:
        stop()


@pytest.mark.full
def test_fit_under_on_off_load_reports_what_an_independent_paired_timing_finds(tmp_path: Path,
                                                                              on_off_load: Callable[[], None]
                                                                              ) -> None:
    result = edgeprune.fit("demo", target="cpu", budget=f"{100 * BUDGET_SHARE:.0f}%", out=tmp_path / "out",
                           precision="fp32")
    report = result.report
    assert report["measurement"]["paired"] is True
    assert all("paired" in r for r in report["search"]["rounds"] if r["kind"] != "baseline")
    reported_ratio = 1.0 / report["speedup_measured"]
    low, high = report["speedup_interval"]
    assert low <= report["speedup_measured"] <= high

    on_off_load()  # the independent check runs on a quiet machine
    original = tmp_path / "original.onnx"
    export_onnx(load_model("demo").model, torch.zeros(result.report["model"]["input_shape"]), original)
    independent = independent_ratio(original, tmp_path / "out" / "model.onnx")

    assert independent <= BUDGET_SHARE * (1 + VERDICT_TOLERANCE), (
        f"the shipped model runs at {independent:.3f} of the original by an independent paired timing; "
        f"fit said {reported_ratio:.3f} and budget met")
    assert abs(reported_ratio / independent - 1) <= SPEEDUP_TOLERANCE, (
        f"fit reported a ratio of {reported_ratio:.3f}, an independent paired timing finds {independent:.3f}")

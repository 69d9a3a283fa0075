"""Shared fixtures: paths to ../shared/data (skipped with a reason when absent) and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeprune.runtimes.openvino.telemetry import keep_openvino_telemetry_off

# tests import OpenVINO directly too: nothing is sent from a test run, and no telemetry process is forked
keep_openvino_telemetry_off()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGEPRUNE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: it holds real CIFAR-10 data and pretrained weights not shipped with edgeprune."""
    if not (SHARED_DATA / "cifar10").is_dir():
        pytest.skip(f"needs the shared data folder {SHARED_DATA} (real CIFAR-10 and weights); not present here")
    return SHARED_DATA


# `make test` (the quick tier: every test not marked `full`) must stay within 15 minutes on 2 cores, and none of its
# tests may take more than this. The run lists any that did, so a test that grew is moved to `make test-full` or
# made smaller before the tier outgrows its budget. A warning, not a failure: a busy machine slows every test.
QUICK_TEST_LIMIT_S = 60.0


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run: the quick-tier tests that took longer than QUICK_TEST_LIMIT_S (setup, call and teardown)."""
    seconds: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport) and "full" not in report.keywords:
                seconds[report.nodeid] = seconds.get(report.nodeid, 0.0) + report.duration
    over = sorted(((s, n) for n, s in seconds.items() if s > QUICK_TEST_LIMIT_S), reverse=True)
    if over:
        terminalreporter.write_sep("=", f"quick-tier tests over {QUICK_TEST_LIMIT_S:.0f} s (mark them `full` or "
                                        "make them smaller)", yellow=True)
        for s, nodeid in over:
            terminalreporter.write_line(f"{s:7.1f} s  {nodeid}")

"""Progress of long stages (issue 37: no silent minute): a line at least every LOG_EVERY_S when nothing else is
logged, nothing from short stages or under --quiet, and the log file's timestamps read back by the gap check."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from log_gaps import longest_silence

from edgeprune import progress
from edgeprune.cli.common import setup_logging


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The root handlers, edgeprune's level and the progress settings as they were before the test."""
    root, package = logging.getLogger(), logging.getLogger("edgeprune")
    handlers, level, settings = root.handlers[:], package.level, (progress._settings.console, progress._settings.bars)
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    package.setLevel(level)
    progress.configure(*settings)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line after 0.5 s of silence, the first one after 0.2 s of a stage."""
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.5)
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER_S", 0.2)


def _progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if progress.is_progress_record(r)]


def test_a_silent_call_gets_a_heartbeat_line_at_least_every_interval(fast: None, logging_restored: None,
                                                                     tmp_path: Path) -> None:
    log_file = tmp_path / "fit.log"
    setup_logging(verbose=False, quiet=False, log_file=log_file)
    log = logging.getLogger("edgeprune.test")
    log.info("before the slow stage")
    with progress.heartbeat("quantizing to INT8"):
        time.sleep(2.0)
    log.info("after the slow stage")
    lines = log_file.read_text().splitlines()
    beats = [line for line in lines if "quantizing to INT8: still running" in line]
    assert len(beats) >= 2, lines
    assert " INFO edgeprune.progress: quantizing to INT8: still running, " in beats[0]
    assert longest_silence(log_file).seconds < 1.5  # 0.5 s and the thread's wake-ups, on a busy machine


def test_under_quiet_the_log_file_still_gets_every_line_and_the_terminal_none(
        logging_restored: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "fit.log"
    setup_logging(verbose=False, quiet=True, log_file=log_file)
    logging.getLogger("edgeprune.fit.run").info("original model: 7.310 ms")
    assert "original model" not in capsys.readouterr().err
    line = log_file.read_text().splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO edgeprune.fit.run: original model: 7.310 ms$", line), line


def test_the_gap_check_sees_a_silent_stage(logging_restored: None, tmp_path: Path) -> None:
    """Without progress, the same sleep is a silence the check reports (the check can fail)."""
    log_file = tmp_path / "fit.log"
    setup_logging(verbose=False, quiet=False, log_file=log_file)
    log = logging.getLogger("edgeprune.test")
    log.info("before")
    time.sleep(0.6)
    log.info("after")
    silence = longest_silence(log_file)
    assert silence.seconds >= 0.55 and "before" in silence.before and "after" in silence.after


def test_a_bar_logs_its_count_share_and_time_left(fast: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeprune")
    with progress.progress_bar("scoring channel importance (lasso)", 4, "groups") as advance:
        for _ in range(4):
            time.sleep(0.25)
            advance(1)
    lines = _progress_lines(caplog)
    assert lines, caplog.text
    assert any(line.startswith("scoring channel importance (lasso): ") and "/4 groups (" in line
               and " elapsed, about " in line and line.endswith(" left") for line in lines), lines


def test_only_the_innermost_stage_speaks(fast: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeprune")
    with progress.heartbeat("fitting"), progress.heartbeat("timing 004-search.onnx"):
        time.sleep(0.9)
    lines = _progress_lines(caplog)
    assert lines and all(line.startswith("timing 004-search.onnx: ") for line in lines), lines


def test_a_young_stage_is_named_after_the_one_that_has_run_long_enough(fast: None, monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.3)
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER_S", 0.5)
    caplog.set_level(logging.INFO, logger="edgeprune")
    with progress.progress_bar("profiling kernels", 10) as advance:
        time.sleep(0.6)  # its first line at 0.5 s
        advance(4)
        with progress.heartbeat("quantizing a probe"):
            time.sleep(0.45)  # the next line, 0.3 s later, falls while this stage is younger than 0.5 s
    lines = _progress_lines(caplog)
    assert any(line.startswith("profiling kernels: 4/10 (40%), ") and line.endswith("; now quantizing a probe")
               for line in lines), lines


def test_a_stage_that_logs_for_itself_gets_no_extra_line(fast: None, caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY_S", 1.0)  # ten times the stage's own pace: no flake on a busy machine
    caplog.set_level(logging.INFO, logger="edgeprune")
    log = logging.getLogger("edgeprune.test")
    with progress.heartbeat("fine-tune"):
        for epoch in range(8):
            log.info("epoch %d", epoch)
            time.sleep(0.1)
    assert _progress_lines(caplog) == []


def test_short_stages_and_quiet_runs_stay_quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeprune")
    with progress.heartbeat("a short stage"):  # the default: nothing before 10 s
        time.sleep(0.3)
    assert _progress_lines(caplog) == []
    caplog.set_level(logging.WARNING, logger="edgeprune")  # --quiet without --log-file
    with progress.progress_bar("evaluating", 3) as advance:
        advance(3)
    assert progress._watch.thread is None and _progress_lines(caplog) == []


def test_durations_read_as_a_person_would_say_them() -> None:
    assert progress.format_duration(4.2) == "4 s"
    assert progress.format_duration(62.4) == "1 min 02 s"
    assert progress.format_duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    stage = progress._Stage("reconstruction", 120, started_s=0.0, unit="layers", done=30)
    assert stage.line(62.0) == "reconstruction: 30/120 layers (25%), 1 min 02 s elapsed, about 3 min left"
    assert progress._Stage("quantizing", None, 0.0).line(75.0) == "quantizing: still running, 1 min 15 s elapsed"

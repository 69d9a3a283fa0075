"""edgeprune.fit.resume: the journal replays measurements only when resuming, each reading once, in order."""

from __future__ import annotations

from pathlib import Path

from edgeprune.config import FitConfig
from edgeprune.fit.resume import RunJournal
from edgeprune.timing import LatencyStats


def _stats(ms: float) -> LatencyStats:
    return LatencyStats(median_ms=ms, p90_ms=ms, mean_ms=ms, min_ms=ms, cv=0.01, runs=50, noisy=False)


def test_a_fresh_run_measures_every_query_a_repeated_one_too(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path, FitConfig(budget="1ms"))
    assert journal.measurement("1:floor:abc") is None
    journal.record("1:floor:abc", _stats(1.0))
    assert journal.measurement("1:floor:abc") is None  # asked again in the same run: measured again
    journal.record("1:floor:abc", _stats(1.2))
    assert journal.replayed == 0


def test_a_resumed_run_replays_each_reading_in_order_then_measures(tmp_path: Path) -> None:
    first = RunJournal(tmp_path, FitConfig(budget="1ms"))
    first.record("1:floor:abc", _stats(1.0))
    first.record("1:search:def", _stats(0.9))
    first.record("1:floor:abc", _stats(1.2))
    resumed = RunJournal(tmp_path, FitConfig(budget="1ms", resume=True))
    readings = [resumed.measurement("1:floor:abc"), resumed.measurement("1:floor:abc")]
    assert [r.median_ms for r in readings if r is not None] == [1.0, 1.2]
    assert resumed.measurement("1:floor:abc") is None  # the interrupted run asked it twice: the third is new
    assert resumed.measurement("1:search:def").median_ms == 0.9  # type: ignore[union-attr]
    assert resumed.replayed == 3
    resumed.record("1:floor:abc", _stats(1.1))
    again = RunJournal(tmp_path, FitConfig(budget="1ms", resume=True))  # interrupted again: all three replay
    assert [again.measurement("1:floor:abc").median_ms for _ in range(3)] == [1.0, 1.2, 1.1]  # type: ignore[union-attr]


def test_a_replayed_reading_brings_back_its_paired_ratio(tmp_path: Path) -> None:
    """Verdicts on a resumed run use the ratio timed side by side, not two medians read minutes apart."""
    first = RunJournal(tmp_path, FitConfig(budget="1ms"))
    first.record("1:quantized:", _stats(0.5), paired_ratio=0.42)
    first.record("1:baseline:", _stats(1.0))
    resumed = RunJournal(tmp_path, FitConfig(budget="1ms", resume=True))
    assert resumed.measurement("1:quantized:").median_ms == 0.5  # type: ignore[union-attr]
    assert resumed.replayed_ratio == 0.42
    assert resumed.measurement("1:baseline:").median_ms == 1.0  # type: ignore[union-attr]
    assert resumed.replayed_ratio is None  # not timed in pairs

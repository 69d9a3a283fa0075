"""End to end: the closed loop confirms a candidate's latency before it spends a fine-tune on it.

Timing noise is what these tests are about, so they inject it: the real ONNX Runtime timer measures every
artifact, and a wrapper multiplies one chosen confirmation by 1.5 — a noise spike of the kind a shared CPU
produces (a 1.213 ms reading against a 1.191 ms budget discarded an 8-epoch fine-tune in the pruning
benchmark). Every other figure is a real measurement.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import edgeprune
import edgeprune.pipeline
from edgeprune.fit_recover import Recovery
from edgeprune.latency.candidates import CONFIRM_TIMING
from edgeprune.latency.timing import LatencyStats, TimingSpec

SPIKE = 1.5


class SpikedConfirmation:
    """The real timer, except that confirmation number ``spiked`` (1 = the baseline's) reads SPIKE times slower."""

    def __init__(self, timer: Any, spiked: int) -> None:
        self.timer, self.spiked, self.confirmations = timer, spiked, 0

    def time(self, artifact: Any, spec: TimingSpec) -> LatencyStats:
        stats = self.timer.time(artifact, spec)
        if spec == CONFIRM_TIMING:
            self.confirmations += 1
            if self.confirmations == self.spiked:
                return dataclasses.replace(stats, median_ms=stats.median_ms * SPIKE, p90_ms=stats.p90_ms * SPIKE,
                                           mean_ms=stats.mean_ms * SPIKE, min_ms=stats.min_ms * SPIKE)
        return stats

    def __getattr__(self, name: str) -> Any:
        return getattr(self.timer, name)


def _fit_with_spike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spiked: int) -> tuple[Any, list[str]]:
    real_make_timer = edgeprune.pipeline.make_timer
    monkeypatch.setattr(edgeprune.pipeline, "make_timer",
                        lambda *a, **k: SpikedConfirmation(real_make_timer(*a, **k), spiked))
    finetuned: list[str] = []
    real_finetune = Recovery._finetune

    def counting_finetune(self: Recovery, model: Any, name: str) -> Any:
        finetuned.append(name)
        return real_finetune(self, model, name)

    monkeypatch.setattr(Recovery, "_finetune", counting_finetune)
    # a wide headroom, so that without the spike every confirmation passes on a noisy machine too
    result = edgeprune.fit("demo", target="cpu", budget="60%", finetune_epochs=1, search_headroom=0.25,
                           out=tmp_path / "out", eval_images=64)
    return result, finetuned


def test_a_candidate_whose_confirmation_misses_is_never_fine_tuned(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    result, finetuned = _fit_with_spike(tmp_path, monkeypatch, spiked=2)  # the first candidate's confirmation
    rounds = result.report["search"]["rounds"]
    early = [r for r in rounds if r["kind"] == "preconfirm"]
    assert len(early) == 2 and not early[0]["meets_budget"] and early[1]["meets_budget"]
    assert len(finetuned) == 1, "the candidate overturned by its confirmation was fine-tuned anyway"
    assert result.report["finetune"]["epochs"] == 1
    kinds = [r["kind"] for r in rounds]
    # after the overturned candidate, the loop searched again; the fine-tuned one was confirmed twice
    assert kinds.index("preconfirm") < max(i for i, k in enumerate(kinds) if k == "search")
    assert kinds[-2:] == ["preconfirm", "confirm"] and rounds[-1]["meets_budget"]
    assert result.final_latency_ms <= result.budget_ms


def test_a_noisy_miss_after_fine_tuning_is_settled_by_a_third_confirmation(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    result, finetuned = _fit_with_spike(tmp_path, monkeypatch, spiked=3)  # the recovered artifact's confirmation
    rounds = result.report["search"]["rounds"]
    assert [r["kind"] for r in rounds[-3:]] == ["preconfirm", "confirm", "recheck"]
    early, spiked, again = rounds[-3:]
    assert early["meets_budget"] and not spiked["meets_budget"] and again["meets_budget"]
    assert len(finetuned) == 1, "a noisy reading discarded the fine-tuned candidate"
    # the reported latency is the third confirmation's, not the spiked one
    assert result.final_latency_ms == pytest.approx(again["median_ms"])
    assert result.final_latency_ms <= result.budget_ms < spiked["median_ms"]

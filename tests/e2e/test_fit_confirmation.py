"""End to end: the closed loop confirms a candidate's latency before it spends a fine-tune on it.

Timing noise is what these tests are about, so they inject it: the real ONNX Runtime timer measures every
artifact, and a wrapper makes one chosen confirmation read 10% over the budget — a noise spike that misses
for certain (on this shared CPU, a 1.213 ms reading against a 1.191 ms budget once discarded an 8-epoch
fine-tune in the pruning benchmark). Every other figure is a real measurement.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import edgeprune
from edgeprune.fit import pipeline as fit_pipeline
from edgeprune.fit.loop.upward import undershoots
from edgeprune.fit.recover import Recovery
from edgeprune.latency.candidates import CONFIRM_TIMING, pairing_for
from edgeprune.paired import PairedStats, PairingSpec, RatioSummary
from edgeprune.timing import LatencyStats, TimingSpec

HEADROOM = 0.25  # fit's --search-headroom in these tests
BUDGET_SHARE = 0.6  # fit's --budget 60%: the budget is this share of the baseline's confirmed median
SPIKE_OVER_BUDGET = 1.1  # the spiked reading lands 10% over the budget: it always misses, but not by so much that
# the recalibrated search jumps to a far thinner candidate (the thinnest ones crash torch's two-thread backward on
# this machine; see the issue notes)


class SpikedConfirmation:
    """The real timer, except that the first confirmation (paired with the original, or alone for the original's
    own) of an artifact exported as each of ``kinds`` reads 10% over the budget when it was within (``preconfirm``: a candidate before recovery; ``preconfirm-recheck``: its
    second confirmation; ``final``: the recovered model). The budget is derived from the baseline's
    confirmation, which this wrapper also sees."""

    def __init__(self, timer: Any, kinds: tuple[str, ...]) -> None:
        self.timer, self.kinds, self.spiked = timer, kinds, set()
        self.baseline_ms: float | None = None

    def time(self, artifact: Any, spec: TimingSpec) -> LatencyStats:
        stats = self.timer.time(artifact, spec)
        stem = Path(artifact.path).stem
        if spec == CONFIRM_TIMING and self.baseline_ms is None and stem.endswith("-original"):
            self.baseline_ms = stats.median_ms
        kind = next((k for k in self.kinds if stem.endswith(f"-{k}")), None)
        if spec == CONFIRM_TIMING and kind is not None and kind not in self.spiked:
            assert self.baseline_ms is not None, "the baseline is confirmed first"
            self.spiked.add(kind)
            factor = max(1.0, BUDGET_SHARE * self.baseline_ms * SPIKE_OVER_BUDGET / stats.median_ms)
            return dataclasses.replace(stats, median_ms=stats.median_ms * factor, p90_ms=stats.p90_ms * factor,
                                       mean_ms=stats.mean_ms * factor, min_ms=stats.min_ms * factor)
        return stats

    def time_paired(self, reference: Any, candidate: Any, spec: PairingSpec, threshold_ratio: float | None = None
                    ) -> PairedStats:
        """The paired reading against the original, with the same spike on the candidate's side (the budget is
        BUDGET_SHARE of the original, so the spiked ratio lands SPIKE_OVER_BUDGET over it)."""
        paired = self.timer.time_paired(reference, candidate, spec, threshold_ratio)
        kind = next((k for k in self.kinds if Path(candidate.path).stem.endswith(f"-{k}")), None)
        if spec != pairing_for(CONFIRM_TIMING) or kind is None or kind in self.spiked:
            return paired
        self.spiked.add(kind)
        f = max(1.0, BUDGET_SHARE * SPIKE_OVER_BUDGET / paired.ratio)
        s, c = paired.summary, paired.candidate
        return dataclasses.replace(
            paired, summary=RatioSummary(s.ratio * f, s.low * f, s.high * f, s.rounds),
            candidate_round_ms=[x * f for x in paired.candidate_round_ms],
            candidate=dataclasses.replace(c, median_ms=c.median_ms * f, p90_ms=c.p90_ms * f, mean_ms=c.mean_ms * f,
                                          min_ms=c.min_ms * f))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.timer, name)


def _fit_with_spike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *kinds: str) -> tuple[Any, list[str]]:
    real_make_timer = fit_pipeline.make_timer
    monkeypatch.setattr(fit_pipeline, "make_timer",
                        lambda *a, **k: SpikedConfirmation(real_make_timer(*a, **k), kinds))
    finetuned: list[str] = []
    real_finetune = Recovery._finetune

    def counting_finetune(self: Recovery, model: Any, name: str, *args: Any) -> Any:
        finetuned.append(name)
        return real_finetune(self, model, name, *args)

    monkeypatch.setattr(Recovery, "_finetune", counting_finetune)
    # a wide headroom, so that without the spike every confirmation passes on a noisy machine too
    result = edgeprune.fit("demo", target="cpu", budget=f"{100 * BUDGET_SHARE:.0f}%", finetune_epochs=1,
                           search_headroom=HEADROOM, out=tmp_path / "out", eval_images=64, precision="fp32")
    return result, finetuned



def _around_first(result: Any, kind: str) -> tuple[list[dict[str, Any]], list[str], int]:
    """The run's search rounds, their kinds, and the index of the first round of ``kind``."""
    rounds = result.report["search"]["rounds"]
    kinds = [r["kind"] for r in rounds]
    return rounds, kinds, kinds.index(kind)

@pytest.mark.full
def test_a_candidate_whose_confirmation_misses_is_never_fine_tuned(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    result, finetuned = _fit_with_spike(tmp_path, monkeypatch, "preconfirm", "preconfirm-recheck")
    rounds, kinds, first = _around_first(result, "preconfirm")
    assert kinds[first: first + 2] == ["preconfirm", "preconfirm-recheck"]
    assert not rounds[first]["meets_budget"] and not rounds[first + 1]["meets_budget"]  # both spiked: a real miss
    # one fine-tune per candidate whose last confirmation before recovery met the budget, none for the others
    decisive = [rounds[i + 1] if kinds[i + 1: i + 2] == ["preconfirm-recheck"] else rounds[i]
                for i, k in enumerate(kinds) if k == "preconfirm"]
    assert len(decisive) >= 2 and decisive[-1]["meets_budget"]
    assert len(finetuned) == sum(r["meets_budget"] for r in decisive) >= 1
    assert result.report["finetune"]["epochs"] == len(finetuned)
    assert first < max(i for i, k in enumerate(kinds) if k == "search")  # searched again
    # The spike (~1.5x the truth here) over-corrects the search; a candidate it sends far under the search target
    # gets one upward search, which replaces it when measured within the budget.
    # The upward search happens at most once per closed loop: a first candidate that already undershot spent it
    # (on this machine's latency table the first search can land far under the target before any spike).
    target_ms = result.budget_ms * (1 - HEADROOM)
    spent = any(k == "search" and undershoots(r["median_ms"], target_ms) for r, k in zip(rounds[:first], kinds))
    again = kinds.index("search", first)
    if not spent and undershoots(rounds[again]["median_ms"], target_ms):
        assert kinds[again + 1] == "search-upward"
        upward = rounds[again + 1]
        if upward["meets_budget"]:
            assert upward["channels_kept"] > rounds[again]["channels_kept"]
            assert "search-upward" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.full
def test_a_noisy_miss_after_fine_tuning_is_settled_by_a_third_confirmation(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    result, finetuned = _fit_with_spike(tmp_path, monkeypatch, "final")
    rounds, kinds, first = _around_first(result, "confirm")
    assert kinds[first - 1: first + 2] == ["preconfirm", "confirm", "recheck"]
    early, spiked, again = rounds[first - 1: first + 2]
    assert early["meets_budget"] and not spiked["meets_budget"]
    # with a 25% headroom the real recheck meets the budget (a paired reading 33% off would be a bug itself)
    assert again["meets_budget"], f"the recheck read {again['median_ms']:.3f} ms against {result.budget_ms:.3f} ms"
    assert len(finetuned) == 1, "a noisy reading discarded the fine-tuned candidate"
    assert result.final_latency_ms == pytest.approx(again["median_ms"])  # the recheck's, not the spike
    assert result.budget_ms < spiked["median_ms"]


@pytest.mark.full
def test_a_single_noisy_preconfirm_is_settled_by_measuring_again(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    result, finetuned = _fit_with_spike(tmp_path, monkeypatch, "preconfirm")
    rounds, kinds, first = _around_first(result, "preconfirm")
    # the candidate preconfirmed is the search's, or the upward search's when the search landed far under
    assert kinds[first - 1] in ("search", "search-upward")
    assert kinds[first: first + 2] == ["preconfirm", "preconfirm-recheck"]
    searched, spiked, again = rounds[first - 1: first + 2]
    assert searched["meets_budget"] and not spiked["meets_budget"]
    # with a 25% headroom the real recheck meets the budget: the searched candidate is kept, no new search
    assert again["meets_budget"], f"the recheck read {again['median_ms']:.3f} ms against {result.budget_ms:.3f} ms"
    assert len(finetuned) == 1
    assert sum(k.startswith("search") for k in kinds) == sum(k.startswith("search") for k in kinds[:first])
    assert "preconfirm-recheck" in (tmp_path / "out" / "report.md").read_text()

"""The guard-floor table bounds two models' top-1 agreement from their top-1 accuracies alone, and says so right."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

from guard_floor import agreement_bounds, main, verdict  # noqa: E402


def test_the_bounds_hold_for_every_pair_of_answer_sets_on_a_small_image_set() -> None:
    """90,000 pairs of answer sets on 6 images of 3 classes (the truth is class 0): every agreement lies within
    the bounds of the two accuracies."""
    answers = list(itertools.product(range(3), repeat=6))
    seen: dict[tuple[int, int], list[float]] = {}
    rng = np.random.default_rng(0)
    for i in rng.choice(len(answers), 300, replace=False):
        for j in rng.choice(len(answers), 300, replace=False):
            a, b = np.array(answers[i]), np.array(answers[j])
            seen.setdefault((int((a == 0).sum()), int((b == 0).sum())), []).append(float((a == b).mean()))
    for (right_a, right_b), agreements in seen.items():
        low, high = agreement_bounds(right_a / 6, right_b / 6)
        assert all(low - 1e-9 <= x <= high + 1e-9 for x in agreements), (right_a, right_b)


def test_the_verdict_names_what_the_floor_does() -> None:
    assert verdict(*agreement_bounds(0.927, 0.91)) == "passes"
    assert verdict(*agreement_bounds(0.927, 0.66)) == "exit 3"
    assert verdict(*agreement_bounds(0.927, 0.80)) == "depends"


def test_the_section_is_written_from_shipped_cells_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for name, after in (("a-2x-ft0", 0.5), ("b-2x-ft4", 0.92), ("c-3x-ft0", None)):
        (results / f"cell-{name}.json").write_text(json.dumps(
            {"cell": name, "baseline_top1_lossless": 0.93, "top1_lossless": after}))
    doc = tmp_path / "benchmarks.md"
    assert main(["--results", str(results), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "| a-2x-ft0 | 93.0% → 50.0% | 43.0 | 43–57% | exit 3 |" in text
    assert "| b-2x-ft4 | 93.0% → 92.0% | 1.0 | 85–99% | passes |" in text
    assert "c-3x-ft0" not in text and "Of 2 shipped cells: 1 pass" in text
    assert main(["--results", str(tmp_path / "none"), "--doc", str(doc)]) == 2

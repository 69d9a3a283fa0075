"""The precision benchmark's cell selection and its goal verdicts (tools/bench/precision.py), on records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import precision  # noqa: E402


def _record(cell: precision.Cell, top1: float, speedup: float, validation: float, status: str = "met"
            ) -> dict[str, Any]:
    return {"cell": cell.name, "target": cell.target, "method": cell.method, "finetune_epochs": cell.epochs,
            "status": status, "top1": top1, "baseline_top1": 0.9272, "validation_top1": validation,
            "speedup": speedup, "speedup_interval": [speedup - 0.05, speedup + 0.05], "environment": {}}


def test_budget_free_cells_come_once_per_target_and_the_rest_per_speedup() -> None:
    cells = precision.cells(["cpu"], ["int8", "mbv2-int8", "int8-blocks"], ["2x", "3x"], 0)
    assert [c.name for c in cells] == ["cpu-int8", "cpu-mbv2-int8", "cpu-int8-blocks-2x-ft0", "cpu-int8-blocks-3x-ft0"]
    assert precision.Cell("cpu", "int8-blocks", "3x", 4).name == "cpu-int8-blocks-3x-ft4kd45k"


def test_the_goals_are_judged_on_the_cell_chosen_on_validation() -> None:
    good = precision.Cell("cpu", "int8-lasso", "2x", 0)
    worse_on_validation = precision.Cell("cpu", "fp32-blocks", "2x", 0)
    tuned = precision.Cell("cpu", "int8-blocks", "3x", 4)
    rows = [_record(good, 0.9292, 2.30, 0.99), _record(worse_on_validation, 0.95, 2.28, 0.70),
            _record(tuned, 0.9150, 3.16, 0.97)]
    text = "\n".join(precision.render(rows))
    assert "chosen on validation `cpu-int8-lasso-2x-ft0`, 92.92% at 2.30× measured: **met**" in text
    assert "`cpu-int8-blocks-3x-ft4kd45k`, 91.50% against the original's 92.72% (-1.22 points) at 3.16×: **missed**" \
        in text
    assert "| int8-lasso | none | 92.92% at 2.30× [2.25, 2.35] | not run | not run |" in text


def test_an_unreachable_cell_is_a_result_never_the_choice() -> None:
    missed = precision.Cell("cpu", "int8-lasso", "3x", 4)
    rows = [_record(missed, 0.0, 0.0, 1.0, status="unreachable")]
    text = "\n".join(precision.render(rows))
    assert "budget not met" in text and "no fine-tuned cell met the budget yet" in text

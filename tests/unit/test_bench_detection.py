"""The detection benchmark's tables and findings (tools/bench/detection.py), rendered from records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import detection  # noqa: E402


def _record(cell: detection.Cell, map50_95: float | None, speedup: float, macs_after: int = 100,
            status: str = "met", precision: str = "fp32") -> dict[str, Any]:
    metrics = None if map50_95 is None else {"map50_95": map50_95, "map50": min(1.0, map50_95 + 0.1)}
    return {"cell": cell.name, "model": cell.model, "target": cell.target, "method": cell.method,
            "speedup_goal": cell.speedup, "finetune_epochs": cell.epochs, "status": status, "speedup": speedup,
            "speedup_interval": [speedup - 0.02, speedup + 0.02], "metrics_before": {"map50_95": 0.9, "map50": 0.97},
            "metrics_after": metrics, "macs_before": 200, "macs_after": macs_after, "precision": precision}


def test_tables_put_methods_side_by_side_and_say_what_is_missing() -> None:
    rows = [_record(detection.Cell("shapes", "cpu", "edgeprune", "2x", 3), 0.81, 2.05),
            _record(detection.Cell("shapes", "cpu", "tp", "2x", 3), 0.544, 2.03),
            _record(detection.Cell("shapes", "cpu", "edgeprune-auto", "1.5x", 0), 0.898, 1.66, 200, precision="int8"),
            _record(detection.Cell("yolov8n-640", "cpu", "edgeprune", "2x", 0), None, 2.06, 62)]
    rows[-1]["metrics_before"] = None
    text = "\n".join(detection.render(rows))
    assert text.startswith(detection.HEADING)
    assert "| target | budget | edgeprune +3 epochs | edgeprune-auto no fine-tune | tp +3 epochs |" in text
    assert "| cpu | 2x | 81.0 / 91.0 at 2.05x [2.03, 2.07], 2.00x fewer MACs | not run | 54.4 / 64.4 at 2.03x" in text
    assert "89.8 / 99.8 at 1.66x [1.64, 1.68], unpruned INT8" in text
    assert "random weights: latency and MACs only" in text and "2.06x [2.04, 2.08], 3.23x fewer MACs" in text
    # the goal check: the default against the better of uniform and Torch-Pruning, cell by cell (issue 39)
    assert "| cpu | 2x | 3 | 81.0 | – | 54.4 | +26.6 | search's widths (no guard) |" in text
    assert "| cpu | 1.5x | 3 |" not in text and "| cpu | 1.5x | 0 |" not in text  # no default cell: no goal row


def test_an_unreachable_budget_is_a_result() -> None:
    row = {**_record(detection.Cell("shapes", "cpu", "tp", "2x", 0), None, 0.0), "status": "unreachable"}
    assert detection._cell_text(row) == "budget not met"

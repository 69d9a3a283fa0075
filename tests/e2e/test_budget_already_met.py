"""A budget the original already meets changes nothing unless asked (issue 35).

With the default precision (``auto``), a 1.2 ms demo model and a 20 ms budget used to ship INT8 anyway (top-1
98.67% → 98.44%, "7.01x faster"). Now the original ships as it is, nothing quantized or pruned, and the
terminal says so; ``--precision auto`` given on the command line still quantizes.

A ``--finetune-epochs`` given to such a run has nothing to recover: it is said on the terminal and in report.json's
``options_not_used`` (issue 37: an option the run's course made moot is never skipped in silence).
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_in_process import run_cli_in_process


def test_the_original_ships_as_it_is_when_it_already_meets_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli_in_process("fit", "--target", "cpu", "--budget", "100ms", "--finetune-epochs", "1",
                              "--eval-images", "64", "--calib-images", "32", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["budget_met_by_original"] is True
    choice = report["method"]["precision_choice"]
    assert choice["precision"] == "fp32" and choice["reason"].startswith("the original already meets the budget")
    assert not any(r.get("kind", "").startswith("quantized") for r in report["search"]["rounds"]), \
        report["search"]["rounds"]
    assert report["final"]["macs"] == report["baseline"]["macs"]
    assert "budget met as it is: the original already met it, nothing changed" in done.stdout
    assert [e["option"] for e in report["options_not_used"]] == \
        ["--finetune-epochs"], report["options_not_used"]
    assert "the original met the budget as it is" in report["options_not_used"][0]["reason"]
    assert "not used          --finetune-epochs: nothing was pruned" in done.stdout

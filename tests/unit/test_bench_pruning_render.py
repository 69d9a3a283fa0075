"""Rendering and goal logic of tools/bench/pruning.py, from fake cell results (no benchmark numbers here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import pruning_report  # noqa: E402


def _baseline() -> dict[str, Any]:
    return {"model": "cifar-resnet56", "weights": "/x/resnet56.th", "target": "cpu", "threads": 1,
            "baseline_ms": 2.0, "p90_ms": 2.1, "top1_lossless": 0.9272, "lossless_images": 1017,
            "top1_jpeg": 0.832, "jpeg_images": 10000, "macs": 126_000_000,
            "environment": {"cpu": "fake cpu", "logical_cores": 2, "versions": {"onnxruntime": "x", "torch": "y"}}}


def _cell(method: str, top1: float | None, epochs: int = 2, budget: str = "2x", status: str = "met") -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell": f"{method}-{budget}-ft{epochs}", "method": method, "budget_name": budget, "budget_fraction": 0.5,
        "budget_ms": 1.0, "baseline_ms": 2.0, "status": status, "model": "cifar-resnet56",
        "finetune": {"epochs": epochs, "images": 10000 if epochs else 0, "lr": 0.01, "batch_size": 64, "seconds": 90.0},
        "wall_seconds": 120.0,
    }
    if status == "met":
        cell.update({"top1_lossless": top1, "top1_jpeg": 0.8, "final": {"median_ms": 0.95, "p90_ms": 1.0, "noisy": False},
                     "speedup": 2.1, "macs_before": 126_000_000, "macs_after": 60_000_000})
    else:
        cell.update({"floor_ms": 1.3, "detail": "unreachable"})
    return cell


def test_goal_met_when_lasso_beats_tp_by_a_point_and_loses_under_a_point_beyond_one_error() -> None:
    cells = [_cell("lasso", 0.9265), _cell("tp", 0.9000), _cell("tp-inner", 0.9050)]
    goal = pruning_report.goal_check(_baseline(), cells)
    assert goal["met"] is True
    row = goal["by_finetune_epochs"][2]
    assert row["tp"] == "tp-inner"  # compared with the stronger Torch-Pruning baseline
    assert row["margin_points"] == pytest.approx(2.15)
    assert row["loss_points"] == pytest.approx(0.07)
    assert row["loss_error_points"] == pytest.approx(pruning_report.sampling_error_points(0.9265, 1017))


def test_a_goal_inside_its_sampling_error_is_not_called_met() -> None:
    # loses 0.72 points (under 1.0) and beats tp-inner by 1.5 (over 1.0), but each within one standard error
    # (about 0.85 points on 1,017 images)
    cells = [_cell("lasso", 0.9200), _cell("tp", 0.9000), _cell("tp-inner", 0.9050)]
    goal = pruning_report.goal_check(_baseline(), cells)
    assert goal["met"] is False
    row = goal["by_finetune_epochs"][2]
    assert row["beats_tp"] is False and row["loss_ok"] is False


@pytest.mark.parametrize("ours, tp", [(0.9200, 0.9150), (0.9100, 0.8000)])
def test_goal_missed_on_small_margin_or_large_loss(ours: float, tp: float) -> None:
    goal = pruning_report.goal_check(_baseline(), [_cell("nisp", ours), _cell("tp", tp)])
    assert goal["met"] is False


def test_goal_undecided_without_fine_tuned_cells_and_tp_unreachable_counts_as_beaten() -> None:
    assert pruning_report.goal_check(_baseline(), [_cell("lasso", 0.92, epochs=0)])["met"] is None
    cells = [_cell("lasso", 0.9265), _cell("tp", None, status="unreachable")]
    assert pruning_report.goal_check(_baseline(), cells)["met"] is True


def test_render_replaces_only_the_marked_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Latency-model fidelity\n\nkeep me\n\n"
                   f"{pruning_report.BEGIN}\nold\n{pruning_report.END}\n\ntrailer\n", encoding="utf-8")
    cells = [_cell("lasso", 0.9265), _cell("tp", 0.9000, epochs=0), _cell("tp", None, status="unreachable")]
    pruning_report.write_section(doc, pruning_report.render_markdown(_baseline(), cells))
    text = doc.read_text(encoding="utf-8")
    assert "keep me" in text and "trailer" in text and "\nold\n" not in text
    assert text.count(pruning_report.BEGIN) == 1 and text.count(pruning_report.END) == 1
    assert "| lasso | 2 ep × 10,000 img (1.5 min) | 92.65% |" in text
    assert "budget unreachable (fastest measured 1.300 ms)" in text
    assert "**Met.**" in text


def test_render_appends_heading_and_markers_once(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Latency-model fidelity\n\nkeep me\n", encoding="utf-8")
    for _ in range(2):
        pruning_report.write_section(doc, pruning_report.render_markdown(_baseline(), [_cell("lasso", 0.92)]))
    text = doc.read_text(encoding="utf-8")
    assert text.count(pruning_report.HEADING) == 1 and text.count(pruning_report.BEGIN) == 1
    assert text.index("keep me") < text.index(pruning_report.HEADING) < text.index(pruning_report.BEGIN)


def test_sampling_error_is_the_binomial_standard_error_and_the_goal_text_states_it() -> None:
    assert pruning_report.sampling_error_points(0.9, 100) == pytest.approx(3.0)
    assert pruning_report.sampling_error_points(0.5, 10_000) == pytest.approx(0.5)
    markdown = pruning_report.render_markdown(_baseline(), [_cell("lasso", 0.92), _cell("tp", 0.90)])
    assert "sample of 1,017 images" in markdown
    assert f"±{pruning_report.sampling_error_points(0.9272, 1017):.2f} points" in markdown


def test_a_seed_repeat_stays_out_of_the_verdict_and_is_shown_next_to_its_seed_0_cell() -> None:
    repeat = {**_cell("lasso", 0.9300), "cell": "lasso-2x-ft2-seed1", "seed": 1}
    cells = [_cell("lasso", 0.9100), _cell("tp", 0.8000), repeat]
    goal = pruning_report.goal_check(_baseline(), cells)
    assert goal["met"] is False  # seed 0 loses 1.72 points; the better seed-1 repeat does not rescue it
    assert goal["by_finetune_epochs"][2]["ours_top1"] == pytest.approx(0.91)
    (check,) = goal["seed_checks"]
    assert check["seed0_top1"] == pytest.approx(0.91) and check["mean_top1"] == pytest.approx(0.92)
    text = "\n".join(pruning_report._goal_lines(goal))
    assert "seed repeat `lasso-2x-ft2-seed1` (not in the verdict): 93.00%" in text and "a loss of 0.72 points" in text
    assert ", seed 1 |" in pruning_report.cell_row(repeat)


def test_a_seed_repeat_at_another_speed_gets_no_mean() -> None:
    repeat = {**_cell("lasso", 0.8800), "cell": "lasso-2x-ft2-seed1", "seed": 1, "speedup": 3.3}
    goal = pruning_report.goal_check(_baseline(), [_cell("lasso", 0.9200), repeat])
    (check,) = goal["seed_checks"]
    assert not check["comparable"] and check["mean_top1"] is None
    assert "different speeds" in "\n".join(pruning_report._goal_lines(goal))


def test_a_cell_run_while_the_machine_was_slower_is_flagged() -> None:
    steady, slow = _cell("lasso", 0.92), _cell("nisp", 0.91)
    steady["fit_baseline_ms"], slow["fit_baseline_ms"] = 2.1, 2.5  # 5% and 25% off the 2.0 ms baseline
    assert pruning_report.drift_note(steady) == "" and pruning_report.drift_note(_cell("l1", 0.9)) == ""
    assert pruning_report.drift_note(slow) == " (machine 25% slower‡)"
    rows = {row.split(" | ")[0]: row for row in pruning_report.render_markdown(_baseline(), [steady, slow]).splitlines()
            if row.startswith("| lasso") or row.startswith("| nisp")}
    assert "‡" in rows["| nisp"] and "‡" not in rows["| lasso"]


def test_three_seeds_at_one_speed_get_a_mean_and_spread_and_stay_out_of_the_verdict() -> None:
    repeats = [{**_cell("lasso", top1), "cell": f"lasso-2x-ft2-seed{seed}", "seed": seed}
               for seed, top1 in ((1, 0.9300), (2, 0.9200))]
    off_speed = {**_cell("lasso", 0.5000), "cell": "lasso-2x-ft2-seed3", "seed": 3, "speedup": 3.3}
    goal = pruning_report.goal_check(_baseline(), [_cell("lasso", 0.9100), _cell("tp", 0.8000), *repeats, off_speed])
    assert goal["met"] is False and len(goal["seed_checks"]) == 3
    (group,) = goal["seed_means"]
    assert group["seeds"] == [0, 1, 2]  # seed 3 ended at another speed: not in the mean
    assert group["mean_top1"] == pytest.approx(0.92) and group["stdev_points"] == pytest.approx(1.0)
    assert group["mean_loss_points"] == pytest.approx(0.72)
    text = "\n".join(pruning_report._goal_lines(goal))
    assert "over seeds 0, 1, 2" in text and "range 91.00% to 93.00%" in text and "standard deviation 1.00" in text


def test_a_single_seed_repeat_gets_no_spread() -> None:
    repeat = {**_cell("lasso", 0.9300), "cell": "lasso-2x-ft2-seed1", "seed": 1}
    assert pruning_report.goal_check(_baseline(), [_cell("lasso", 0.9100), repeat])["seed_means"] == []


def _validated(cell: dict[str, Any], val: float, hints: bool = False) -> dict[str, Any]:
    cell["validation"] = {"top1": val, "images": 5085}
    cell["finetune"].update({"distill": True, "images": 44915, "epochs": 4, "distill_features": hints,
                             "train_data": "cifar10_train_jpeg_nall_seed0_minus_cifar10_train_lossless_subset5085.npz"})
    if hints:
        cell["cell"] += "-hints"
    return cell


def test_the_validated_goal_chooses_on_validation_and_reports_only_the_chosen_cells_test_figure() -> None:
    # the hints cell has the better test top-1 but the worse validation top-1: the plain cell must be chosen
    plain = _validated(_cell("blocks", 0.9154, epochs=4), 0.9355)
    hints = _validated(_cell("blocks", 0.9194, epochs=4), 0.9337, hints=True)
    tp = _validated(_cell("tp-exact", 0.80, epochs=4), 0.85)
    tp_better_test = _validated(_cell("tp", 0.91, epochs=4), 0.84)  # not chosen: lower validation
    goal = pruning_report.validated_goal_check(_baseline(), [plain, hints, tp, tp_better_test])
    (row,) = goal["by_finetune_epochs"].values()  # hints pooled into the same fine-tune budget
    assert row["ours_cell"] == plain["cell"] and row["ours_top1"] == pytest.approx(0.9154)
    assert row["tp"] == "tp-exact" and row["tp_top1"] == pytest.approx(0.80)
    assert row["loss_ok"] is False and goal["met"] is False  # 1.18 points lost
    text = pruning_report.render_markdown(_baseline(), [plain, hints, tp, tp_better_test])
    assert text.startswith(pruning_report.VALIDATED_BEGIN) and "top-1 validation" in text
    assert "chosen on validation" in text and pruning_report.LEGACY_NOTE not in text


def test_results_without_a_validation_split_are_marked_as_older() -> None:
    text = pruning_report.render_markdown(_baseline(), [_cell("lasso", 0.9), _cell("tp", 0.8)])
    assert text.startswith(pruning_report.BEGIN) and pruning_report.LEGACY_NOTE in text

"""report.md: every section when the data is there, robust when it is not, honest about predicted latencies."""

from __future__ import annotations

import copy
from typing import Any

from edgeprune.report.markdown import latency_provenance, render_markdown


def test_full_report_has_every_section(full_report: dict[str, Any]) -> None:
    md = render_markdown(full_report, ["accuracy_vs_latency.png", "layer_latency.png"])
    for heading in ("# edgeprune report: demo on target `cpu`", "## Accuracy vs latency",
                    "## Validation of every exported artifact", "## Method",
                    "## Search rounds: predicted vs measured latency", "## Per-layer latency",
                    "## Channel widths per layer group", "## Time per stage", "## Files", "## Environment"):
        assert heading in md, heading
    assert "![accuracy vs latency](accuracy_vs_latency.png)" in md
    assert "![per-layer latency before and after pruning](layer_latency.png)" in md
    assert "**Latencies were measured on the target**" in md
    assert "PREDICTED" not in md.split("## Per-layer latency")[0]
    assert "measured (onnxruntime profiler)" in md


def test_search_rounds_show_predicted_and_measured(full_report: dict[str, Any]) -> None:
    md = render_markdown(full_report)
    rounds = full_report["search"]["rounds"]
    predicted = [r for r in rounds if r.get("predicted_ms") is not None]
    assert predicted, "the demo report has predicted rounds"
    for r in predicted:
        assert f"| {r['predicted_ms']:.3f} | {r['median_ms']:.3f} |" in md
    table = md.split("## Search rounds")[1].split("\n## ")[0]
    assert table.count("\n| ") == len(rounds) + 1  # header + one row per round


def test_confirmation_round_kinds_are_explained_only_when_present(full_report: dict[str, Any]) -> None:
    assert "*preconfirm*" not in render_markdown(full_report)
    report = copy.deepcopy(full_report)
    last = report["search"]["rounds"][-1]
    report["search"]["rounds"][-1:] = [{**last, "kind": "preconfirm"}, last, {**last, "kind": "recheck"}]
    md = render_markdown(report)
    assert "*preconfirm* is the longer confirming measurement" in md and "*recheck* is one more" in md
    assert "| preconfirm |" in md and "| recheck |" in md


def test_widths_timings_and_artifacts_are_rendered(full_report: dict[str, Any]) -> None:
    md = render_markdown(full_report)
    for g in full_report["groups"]:
        assert f"| `{g['name']}` | {g['width_before']} | {g['width_after']} |" in md
    for stage, seconds in full_report["timings_s"].items():
        assert f"| {stage} | {seconds:.1f} |" in md
    assert "| onnx | model.onnx | 9.50e-07 | 99.70% | 71.00% | 0.840 | 0.900 | yes |" in md
    assert "**no**" in md and "1 artifact(s) failed validation" in md
    assert "parity above tolerance \\| 1e-3" in md  # a pipe in a value does not break the table


def test_plots_are_embedded_only_when_written(full_report: dict[str, Any]) -> None:
    md = render_markdown(full_report)
    assert "](accuracy_vs_latency.png)" not in md and "](layer_latency.png)" not in md


def test_predicted_profile_says_predicted_not_measured(predicted_report: dict[str, Any]) -> None:
    md = render_markdown(predicted_report)
    assert "PREDICTED, not measured" in md
    assert "latency (PREDICTED, not measured)" in md
    assert "measured on the target" not in md
    assert "rpi4-litert" in md
    assert "PREDICTED" in latency_provenance(predicted_report)


def test_agent_source_is_named(demo_report: dict[str, Any]) -> None:
    demo_report["final"]["latency"]["source"] = "measured-agent"
    assert "through an edgeprune agent" in render_markdown(demo_report)


def test_minimal_older_report_renders(demo_report: dict[str, Any]) -> None:
    core = {k: copy.deepcopy(demo_report[k]) for k in ("schema", "target", "baseline", "final", "budget_ms")}
    for side in ("baseline", "final"):
        core[side] = {"latency": {"median_ms": demo_report[side]["latency"]["median_ms"]}}
    md = render_markdown(core)
    assert md.startswith("# edgeprune report:")
    assert f"{demo_report['final']['latency']['median_ms']:.3f} ms" in md
    for optional in ("## Search rounds", "## Per-layer latency", "## Validation", "## Time per stage"):
        assert optional not in md


def test_method_states_the_fine_tune_recipe(demo_report: dict[str, Any]) -> None:
    assert "Fine-tuning: 0 epoch(s) on 1347 images (0.0 s)." in render_markdown(demo_report)
    demo_report["finetune"] = {"epochs": 3, "images": 50000, "seconds": 1200.0, "schedule": "rewind", "lr": 0.01,
                               "augment": "crop,flip", "distill": True, "distill_temperature": 4.0,
                               "distill_alpha": 0.9}
    md = render_markdown(demo_report)
    assert ("Fine-tuning: 3 epoch(s) on 50000 images (1200.0 s), rewind schedule from learning rate 0.01, "
            "distillation from the original (T=4.0, alpha=0.9), augmentation crop,flip.") in md
    demo_report["finetune"].update(distill=False, augment="none")
    assert "learning rate 0.01, no augmentation." in render_markdown(demo_report)


def test_qat_sentence_says_what_ran_and_what_shipped_or_why_it_was_skipped(full_report: dict[str, Any]) -> None:
    report = copy.deepcopy(full_report)
    report["method"]["qat"] = {"ran": False, "epochs": 0,
                               "reason": "skipped: the run ships a float model (fp32), and QAT applies to INT8 only"}
    assert "Quantization-aware fine-tuning: skipped: the run ships a float model" in render_markdown(report)
    report["method"]["qat"] = {"ran": True, "epochs": 1, "seconds": 9.5, "images": 1347, "lr": 0.0001,
                               "batch_norms_folded": 9, "tool": "nncf.quantize", "shipped": "qat", "reason": "ok",
                               "ptq": {"top1": 0.98, "median_ms": 0.31}, "qat": {"top1": 0.9822, "median_ms": 0.305}}
    md = render_markdown(report)
    assert "PTQ artifact 98.00% (0.310 ms), QAT artifact 98.22% (0.305 ms); the QAT artifact shipped" in md
    report["method"]["qat"] = {**report["method"]["qat"], "shipped": "ptq", "reason": "kept the PTQ artifact: x"}
    assert "; kept the PTQ artifact: x." in render_markdown(report)


def test_a_detectors_search_rounds_show_each_candidates_map(full_report: dict[str, Any], tmp_path) -> None:
    from edgeprune.report.plots import _points

    report = full_report
    report["evaluation"].update(task="detection", metric="mAP50-95", metric_key="map50_95")
    for r in report["search"]["rounds"]:
        if r.pop("top1", None) is not None:
            r["map50_95"] = 0.5
    table = render_markdown(report).split("## Search rounds")[1].split("\n## ")[0]
    assert "| mAP50-95 |" in table and "| 50.00% |" in table and "top-1" not in table
    with_accuracy, latency_only = _points(report)
    assert with_accuracy and all(acc == 50.0 for _, acc in with_accuracy) and not latency_only


def test_how_labels_were_made_and_labels_at_chance_are_said(full_report: dict[str, Any]) -> None:
    from edgeprune.data.label_check import label_check

    report = copy.deepcopy(full_report)
    report["label_check"] = label_check(0.97, 300, 10, "3 folders named by class index -> that index")
    md = render_markdown(report)
    assert "Labels: 3 folders named by class index -> that index." in md and "**Warning:**" not in md
    report["label_check"] = label_check(0.0, 300, 1000, "3 folders in sorted order -> classes 0..2")
    md = render_markdown(report)
    assert "**Warning:** the original model's top-1 on the labelled data is 0.00% on 300 images" in md

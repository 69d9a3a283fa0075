"""Rendering of tools/bench/reference_models.py from a fake result (no benchmark numbers here)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import reference_models  # noqa: E402
from pruning_report import write_section  # noqa: E402


def test_reference_section_lists_every_model_and_replaces_only_its_markers(tmp_path: Path) -> None:
    result = {"target": "cpu", "passes": 3, "environment": {"cpu": "fake cpu", "versions": {"onnxruntime": "x"}},
              "models": [{"model": "cifar-resnet56", "top1_lossless": 0.9272, "top1_jpeg": 0.832, "latency_ms": 2.4,
                          "speedup_vs_resnet56": 1.0, "macs": 126_550_666, "params": 853_018},
                         {"model": "cifar-resnet20", "top1_lossless": 0.9164, "top1_jpeg": 0.8103, "latency_ms": 0.8,
                          "speedup_vs_resnet56": 3.0, "macs": 40_900_000, "params": 269_722}]}
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nkeep\n\n{reference_models.BEGIN}\nold\n{reference_models.END}\n", encoding="utf-8")
    write_section(doc, reference_models.render(result), reference_models.BEGIN, reference_models.END,
                  reference_models.HEADING)
    text = doc.read_text(encoding="utf-8")
    assert "keep" in text and "\nold\n" not in text
    assert "| cifar-resnet20 | 91.64% | 81.03% | 0.800 | 3.00× | 40.9 M | 269,722 |" in text
    assert "median of 3 interleaved passes" in text

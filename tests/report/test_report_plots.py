"""Plots of a fit report: real PNG files, readable sizes, honest labels, skipped when data is absent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from matplotlib import image as mpimg

from edgeprune.report.plots import ACCURACY_PLOT, LAYER_PLOT, latency_axis_label, plot_layer_latency, write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path) -> None:
    """PNG signature, more than 5 kB, and matplotlib reads it back at a readable size."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert len(data) > 5_000, f"{path.name} is only {len(data)} bytes"
    pixels = mpimg.imread(path)
    height, width = pixels.shape[:2]
    assert 300 <= height <= 5_000 and 500 <= width <= 3_000, (height, width)
    assert pixels.std() > 0.01, "the image is blank"


def test_full_report_draws_both_plots(full_report: dict[str, Any], tmp_path: Path) -> None:
    written = write_plots(tmp_path, full_report)
    assert written == [ACCURACY_PLOT, LAYER_PLOT]
    for name in written:
        assert_valid_png(tmp_path / name)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "temporary files left behind"


def test_real_demo_report_draws_accuracy_plot_and_skips_layer_plot(demo_report: dict[str, Any], tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edgeprune"):
        written = write_plots(tmp_path, demo_report)
    assert written == [ACCURACY_PLOT]
    assert_valid_png(tmp_path / ACCURACY_PLOT)
    assert not (tmp_path / LAYER_PLOT).exists()
    assert "per-layer" in caplog.text and LAYER_PLOT in caplog.text


def test_report_without_labels_still_plots(demo_report: dict[str, Any], tmp_path: Path) -> None:
    demo_report["baseline"]["top1"] = demo_report["final"]["top1"] = None
    assert write_plots(tmp_path, demo_report) == [ACCURACY_PLOT]
    assert_valid_png(tmp_path / ACCURACY_PLOT)


def test_layer_plot_keeps_top_layers_and_handles_removed(full_report: dict[str, Any], tmp_path: Path) -> None:
    path = plot_layer_latency(full_report["per_layer_latency"], tmp_path / "layers.png", top=5)
    assert_valid_png(path)
    with pytest.raises(ValueError):
        plot_layer_latency({"source": "measured (x profiler)", "layers": []}, tmp_path / "empty.png")


def test_rewriting_a_plot_replaces_it(full_report: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / ACCURACY_PLOT).write_bytes(b"old")
    write_plots(tmp_path, full_report)
    assert_valid_png(tmp_path / ACCURACY_PLOT)


@pytest.mark.parametrize(("source", "expected"), [("measured-local", "measured median latency (ms)"),
                                                  ("measured-agent", "agent"),
                                                  ("predicted-profile", "PREDICTED")])
def test_latency_axis_says_where_latencies_come_from(demo_report: dict[str, Any], source: str,
                                                     expected: str) -> None:
    demo_report["final"]["latency"]["source"] = source
    assert expected in latency_axis_label(demo_report)


def test_png_check_rejects_tiny_or_fake_images(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"GIF89a" + b"\0" * 10_000)
    with pytest.raises(AssertionError):
        assert_valid_png(fake)
    fake.write_bytes(PNG_SIGNATURE + b"\0" * 100)
    with pytest.raises(AssertionError):
        assert_valid_png(fake)

"""``edgeprune bench``: model files timed against the first one in pairs, in the real runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_helpers import conv_stack

from edgeprune.cli.main import main
from edgeprune.runtimes.onnx_export import export_onnx


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    small = export_onnx(conv_stack(0, 32), torch.rand(1, 3, 48, 48), folder / "small.onnx")
    large = export_onnx(conv_stack(4, 32), torch.rand(1, 3, 48, 48), folder / "large.onnx")  # about 30x the MACs
    return small, large


def test_bench_pairs_every_artifact_with_the_first(pair: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    small, large = pair
    plot = tmp_path / "bench.png"
    code = main(["bench", str(small), str(large), "--threads", "1", "--seconds", "0.3", "--plot", str(plot),
                 "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [Path(r["artifact"]).name for r in rows] == ["small.onnx", "large.onnx"]
    reference, other = rows
    assert reference["ratio"] == 1.0 and reference["paired"] is None
    assert other["rounds"] >= 6 and len(other["paired"]["reference_round_ms"]) == other["rounds"]
    assert other["ratio_low"] <= other["ratio"] <= other["ratio_high"]
    assert other["ratio"] > 2.0  # four more 32-channel convolutions cost far more than the first layer alone
    assert other["median_ms"] == pytest.approx(other["ratio"] * reference["median_ms"])
    assert other["top_kernels"] and other["top_kernels"][0]["ms"] > 0  # ONNX Runtime profiles its kernels
    assert plot.is_file() and plot.stat().st_size > 1000


def test_bench_prints_a_table(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    small, large = pair
    assert main(["bench", str(small), str(large), "--seconds", "0.2", "--kernels", "0"]) == 0
    out = capsys.readouterr().out
    assert "large.onnx" in out and "reference" in out and "paired with the first artifact" in out


def _exit_code(argv: list[str]) -> int:
    """The exit code of ``edgeprune ARGV`` (argparse refuses bad flags with SystemExit, the verb returns one)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("argv, message", [
    (["bench", "missing.onnx"], "artifact not found"),
    (["bench", "{small}", "--threads", "0"], "positive thread counts"),
    (["bench", "{small}", "--seconds", "0"], "seconds from 0.1"),
])
def test_bad_bench_input_is_one_line(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str], argv: list[str],
                                     message: str) -> None:
    assert _exit_code([a.replace("{small}", str(pair[0])) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

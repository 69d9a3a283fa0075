"""End to end: ``fit --model timm:NAME`` on the constructs timm's edge models brought (issue 37).

GhostNet's concatenation of a layer with its depthwise copy (sliced back to its width) is pruned, not frozen;
ConvNeXt's layer scale (``gamma.reshape(1, -1, 1, 1)``) leaves its residual streams prunable, and its INT8 artifact
is made without ONNX Runtime's quantizer or Torch-Pruning writing to the terminal. Random weights saved as a
``.safetensors`` file stand for timm's pretrained ones (nothing is fetched), on 24 tiny random images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_in_process import run_cli_in_process
from safetensors.torch import save_file

pytest.importorskip("timm", reason="the [timm] extra (timm) is not installed")

from edgeprune.models.zoo import build_architecture  # noqa: E402


def _weights_and_data(tmp_path: Path, name: str) -> tuple[Path, Path]:
    torch.manual_seed(0)
    model = build_architecture(f"timm:{name}", 10).model
    weights = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    rng = np.random.default_rng(0)
    data = tmp_path / "images.npz"
    np.savez(data, x=rng.integers(0, 256, (24, 64, 64, 3), dtype=np.uint8), y=rng.integers(0, 10, 24))
    return weights, data


def _fit(tmp_path: Path, name: str, *extra: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    weights, data = _weights_and_data(tmp_path, name)
    out = tmp_path / "out"
    proc = run_cli_in_process("fit", "--model", f"timm:{name}", "--weights", str(weights), "--num-classes", "10",
                              "--input-shape", "3,64,64", "--data", str(data), "--target", "cpu", "--budget", "80%",
                              "--allocation", "uniform", "--max-rounds", "3", "--min-agreement", "0",
                              "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), proc.stderr


@pytest.mark.full
def test_a_ghostnet_fit_prunes_its_sliced_concatenations(tmp_path: Path) -> None:
    report, _ = _fit(tmp_path, "ghostnet_100", "--precision", "fp32")
    assert [g["name"] for g in report["frozen_groups"]] == ["classifier"], report["frozen_groups"]
    assert report["final"]["macs"] < report["baseline"]["macs"]
    assert all(a["passed"] for a in report["artifacts"]), report["artifacts"]


@pytest.mark.full
def test_a_convnext_int8_fit_keeps_the_terminal_clean(tmp_path: Path) -> None:
    report, stderr = _fit(tmp_path, "convnext_atto", "--precision", "int8", "--calib-images", "16")
    assert [g["name"] for g in report["frozen_groups"]] == ["head.fc"], report["frozen_groups"]
    assert "out-of-range" not in stderr and "Unwrapped parameters" not in stderr, stderr[-3000:]
    assert all(a["passed"] for a in report["artifacts"]), report["artifacts"]

"""LiteRT (TFLite, XNNPACK) meets the backend contract; it has no per-op profiler and runs fp32 and int8 models (not fp16)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from contract import BackendContract, Exported

from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.runtimes.base import Artifact
from edgeprune.runtimes.litert.backend import LiteRtBackend
from edgeprune.target import load_target


class TestLiteRt(BackendContract):
    backend = LiteRtBackend()
    target = load_target("cpu-tflite")
    suffixes = (".tflite",)
    atol = 1e-4  # XNNPACK fp32: measured max |diff| ~1e-6
    has_layer_profiler = False

    def test_input_is_found_by_position_whatever_the_callers_name(self, exported: Exported) -> None:
        by_name = exported.session.run(exported.feed())[0]
        by_position = exported.session.run({"input": exported.example.numpy()})[0]
        np.testing.assert_array_equal(by_name, by_position)

    def test_export_prints_nothing(self, capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        from contract import _inverted_residual

        model, example = _inverted_residual()
        artifact = self.backend.export(model, example, tmp_path / "quiet", self.target)
        self.backend.load(artifact, self.target).run({"input": example.numpy()})
        out, err = capfd.readouterr()
        assert out == "" and err == ""


def test_refuses_fp16_targets(tmp_path: Path) -> None:
    fp16 = dataclasses.replace(load_target("cpu-tflite"), precision="fp16")
    artifact = Artifact(tmp_path / "m.tflite", "tflite", "x", (1, 3, 8, 8))
    with pytest.raises(InputError, match="runs fp32 and int8 models, not .fp16."):
        LiteRtBackend().load(artifact, fp16)


def test_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ai_edge_litert" else real(name, *a)
    )
    backend = LiteRtBackend()
    assert not backend.available()
    with pytest.raises(MissingRuntimeError, match=r"edgeprune\[tflite\]"):
        backend.load(Artifact(tmp_path / "m.tflite", "tflite", "x", (1, 3, 8, 8)), load_target("cpu-tflite"))

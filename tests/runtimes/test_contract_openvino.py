"""OpenVINO meets the backend contract; device and precision are taken from the target, never defaulted."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import openvino as ov  # noqa: E402  (installed by the test environment: missing fails, never skips)
import pytest
import torch
from contract import BackendContract, Exported, _residual

from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.runtimes.base import Artifact
from edgeprune.runtimes.onnx_export import INPUT_NAME, export_onnx
from edgeprune.runtimes.openvino.backend import OpenVinoBackend, compile_config
from edgeprune.target import Target, load_target


class TestOpenVino(BackendContract):
    backend = OpenVinoBackend()
    target = load_target("cpu-openvino")
    suffixes = (".xml", ".bin")
    atol = 1e-4  # f32: measured max |diff| ~1e-6 (bf16, OpenVINO's default here, is ~2e-2)

    def test_compiles_in_f32_with_the_targets_threads(self, exported: Exported) -> None:
        compiled = exported.session.compiled
        assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
        assert compiled.get_property("INFERENCE_NUM_THREADS") == self.target.threads
        assert compiled.get_property("NUM_STREAMS") == 1


def test_npu_target_is_refused_not_run_on_the_cpu(tmp_path: Path) -> None:
    if "NPU" in ov.Core().available_devices:
        pytest.skip("this machine has an NPU")
    model, example = _residual()
    cpu = load_target("cpu-openvino")
    artifact = OpenVinoBackend().export(model, example, tmp_path / "m", cpu)
    npu = dataclasses.replace(cpu, name="npu-test", device="NPU")
    with pytest.raises(InputError, match="device 'NPU'.*not available on this machine"):
        OpenVinoBackend().load(artifact, npu)
    # AUTO would quietly run on the CPU and be reported as the NPU
    auto = dataclasses.replace(cpu, name="auto-test", device="AUTO:NPU,CPU")
    with pytest.raises(InputError, match="not available on this machine"):
        OpenVinoBackend().load(artifact, auto)


def test_loads_onnx_files_directly(tmp_path: Path) -> None:
    """The latency profiler hands OpenVINO ONNX probe models, not IR."""
    model, example = _residual()
    path = export_onnx(model, example, tmp_path / "probe.onnx")
    target = load_target("cpu-openvino")
    session = OpenVinoBackend().load(Artifact(path, "onnx", INPUT_NAME, tuple(example.shape)), target)
    with torch.no_grad():
        expected = model(example).numpy()
    assert np.abs(session.run({INPUT_NAME: example.numpy()})[0] - expected).max() <= 1e-4


def test_refuses_tflite_artifacts_and_runs_an_int8_targets_float_parts_in_f32(tmp_path: Path) -> None:
    artifact = Artifact(tmp_path / "m.tflite", "tflite", "x", (1, 3, 8, 8))
    with pytest.raises(InputError, match="cannot load a 'tflite' artifact"):
        OpenVinoBackend().load(artifact, load_target("cpu-openvino"))
    # an INT8 IR's FakeQuantize ops run in int8 whatever the hint; its other ops must not drop to bf16
    assert compile_config(Target("int8", "int8", "openvino", precision="int8"))["INFERENCE_PRECISION_HINT"] == "f32"


def test_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    backend = OpenVinoBackend()
    assert not backend.available()
    with pytest.raises(MissingRuntimeError, match=r"edgeprune\[openvino\]"):
        backend.load(Artifact(tmp_path / "m.xml", "openvino", "x", (1, 3, 8, 8)), load_target("cpu-openvino"))

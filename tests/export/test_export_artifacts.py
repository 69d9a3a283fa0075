"""export_artifacts: one model to ONNX, OpenVINO IR and TFLite, each running in its runtime at parity with
PyTorch, with a verified sidecar; NHWC input; no overwriting; nothing partial left behind."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from export_test_models import INPUT_SHAPE, tiny_model

from edgeprune.errors import InputError, MissingRuntimeError, OutputError
from edgeprune.export import ExportedArtifact, export_artifacts, read_sidecar
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.target import load_target
from edgeprune.validate.runners import load_artifact

PREP = Preprocessing(24, 24, 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
DIGEST = "cd" * 32
#: fp32 runtimes vs PyTorch on the tiny model: ~1e-6 measured
ATOL = 1e-4


def _inputs(n: int = 3) -> list[torch.Tensor]:
    return [torch.randn(*INPUT_SHAPE, generator=torch.Generator().manual_seed(10 + i)) for i in range(n)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ExportedArtifact]]:
    out = tmp_path_factory.mktemp("export-all")
    items = export_artifacts(tiny_model(), torch.randn(*INPUT_SHAPE), "onnx,openvino,tflite", out,
                             target=load_target("cpu"), preprocessing=PREP, plan_digest=DIGEST)
    return out, items


def test_every_format_is_written_with_a_verified_sidecar(exported: tuple[Path, list[ExportedArtifact]]) -> None:
    out, items = exported
    assert [i.format for i in items] == ["onnx", "openvino", "tflite"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["model.onnx", "model.onnx.json", "model.xml", "model.bin", "model.xml.json",
                            "model.tflite", "model.tflite.json"]), "staging leftovers or missing files"
    runtimes = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}
    for item in items:
        sidecar = read_sidecar(item.path)  # verifies every checksum
        assert sidecar == item.sidecar
        assert sidecar.runtime == runtimes[item.format] and sidecar.runtime_version
        assert sidecar.plan_sha256 == DIGEST
        assert set(sidecar.files) == {f.name for f in item.files}
        assert sidecar.target == {"name": "cpu", "device": "cpu", "threads": 1, "precision": "fp32"}
        assert sidecar.input.shape == INPUT_SHAPE and sidecar.input.layout == "NCHW"
        assert sidecar.input.mean == PREP.mean and sidecar.input.std == PREP.std
    assert items[0].simplified is not None and items[1].simplified is None
    assert {f.name for f in items[1].files} == {"model.xml", "model.bin"}


@pytest.mark.parametrize("index", [0, 1, 2], ids=["onnx", "openvino", "tflite"])
def test_each_artifact_runs_in_its_runtime_and_matches_pytorch(
        exported: tuple[Path, list[ExportedArtifact]], index: int) -> None:
    item = exported[1][index]
    loaded = load_artifact(item.path, load_target("cpu"))
    assert loaded.target.runtime == item.sidecar.runtime
    model = tiny_model()
    for x in _inputs():
        with torch.no_grad():
            expected = model(x).numpy()
        produced = loaded.run(x.numpy())
        assert produced.shape == expected.shape
        diff = float(np.abs(produced - expected).max())
        assert diff <= ATOL, f"{item.format}: max |diff| {diff:.2e} > {ATOL:.0e}"


def _check_nhwc(tmp_path: Path, fmt: str) -> None:
    model = tiny_model(3)
    items = export_artifacts(model, torch.randn(*INPUT_SHAPE), fmt, tmp_path, target=load_target("cpu-tflite"),
                             preprocessing=PREP, plan_digest=None, nhwc=True)
    assert not model.training, "export must leave the model in the mode it found it"
    n, c, h, w = INPUT_SHAPE
    item = items[0]
    assert item.sidecar.input.layout == "NHWC" and item.sidecar.input.shape == (n, h, w, c)
    loaded = load_artifact(item.path, load_target("cpu-tflite"))
    assert loaded.layout == "NHWC" and loaded.nchw_shape == INPUT_SHAPE
    x = _inputs(1)[0]
    nhwc = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
    produced = np.asarray(loaded.session.run({loaded.input_name: nhwc})[0])
    with torch.no_grad():
        expected = model(x).numpy()
    assert float(np.abs(produced - expected).max()) <= ATOL
    np.testing.assert_allclose(loaded.run(x.numpy()), produced, atol=1e-6)  # NCHW in, transposed for it


def test_nhwc_onnx_takes_channels_last_input(tmp_path: Path) -> None:
    _check_nhwc(tmp_path, "onnx")


def test_nhwc_tflite_takes_channels_last_input(tmp_path: Path) -> None:
    _check_nhwc(tmp_path, "tflite")


def test_existing_artifacts_are_kept_without_force(tmp_path: Path) -> None:
    first = export_artifacts(tiny_model(0), torch.randn(*INPUT_SHAPE), "onnx", tmp_path, target=load_target("cpu"))
    before = first[0].path.read_bytes()
    with pytest.raises(OutputError, match=r"model\.onnx.*--force"):
        export_artifacts(tiny_model(1), torch.randn(*INPUT_SHAPE), "onnx", tmp_path, target=load_target("cpu"))
    assert first[0].path.read_bytes() == before
    again = export_artifacts(tiny_model(1), torch.randn(*INPUT_SHAPE), "onnx", tmp_path, target=load_target("cpu"),
                             force=True)
    assert again[0].path.read_bytes() != before
    read_sidecar(again[0].path)


def test_a_failing_format_leaves_nothing_behind(tmp_path: Path) -> None:
    fp16_tflite = dataclasses.replace(load_target("cpu-tflite"), precision="fp16")
    with pytest.raises(InputError, match="runs fp32 and int8 models, not .fp16."):
        export_artifacts(tiny_model(), torch.randn(*INPUT_SHAPE), "onnx,tflite", tmp_path, target=fp16_tflite)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_runtime_fails_before_any_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "litert_torch" else real(name, *a))
    with pytest.raises(MissingRuntimeError, match=r"edgeprune\[tflite\]"):
        export_artifacts(tiny_model(), torch.randn(*INPUT_SHAPE), "onnx,tflite", tmp_path, target=load_target("cpu"))
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("index", [1, 2], ids=["openvino", "tflite"])
def test_validate_accepts_each_runtime_artifact(exported: tuple[Path, list[ExportedArtifact]], index: int) -> None:
    from edgeprune.timing import TimingSpec
    from edgeprune.validate.artifact_check import validate_artifact

    item = exported[1][index]
    result = validate_artifact(item.path, load_target("cpu"), reference=tiny_model(), images=8,
                               timing=TimingSpec(warmup_runs=2, min_runs=5, min_seconds=0.0))
    assert result.passed and result.sidecar_verified
    assert result.runtime["name"] == item.sidecar.runtime and result.latency is not None
    assert result.latency["backend"] == item.sidecar.runtime and result.latency["median_ms"] > 0
    with pytest.raises(Exception, match="failed validation"):
        validate_artifact(item.path, load_target("cpu"), reference=tiny_model(seed=4), images=8, measure=False)

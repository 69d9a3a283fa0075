"""Artifact sidecars: lossless round trip, checksum verification, and refusal of malformed records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprune.errors import ArtifactIntegrityError, InputError
from edgeprune.export.sidecar import (
    SCHEMA,
    InputSpec,
    Sidecar,
    checksums,
    file_sha256,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)


def _ir_files(tmp_path: Path) -> tuple[Path, Path]:
    xml, weights = tmp_path / "model.xml", tmp_path / "model.bin"
    xml.write_text("<net name='m'/>", encoding="utf-8")
    weights.write_bytes(bytes(range(256)) * 4)
    return xml, weights


def _sidecar(paths: list[Path], **overrides: object) -> Sidecar:
    fields: dict[str, object] = dict(
        format="openvino", runtime="openvino", runtime_version="2026.4.1",
        target={"name": "cpu-openvino", "device": "cpu", "threads": 2, "precision": "fp32"},
        input=InputSpec("input", (1, 3, 32, 32), "NCHW", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        plan_sha256="ab" * 32)
    fields.update(overrides)
    fields.setdefault("files", checksums(paths))
    return Sidecar(**fields)  # type: ignore[arg-type]


def test_round_trip_is_lossless_and_lists_every_file(tmp_path: Path) -> None:
    xml, weights = _ir_files(tmp_path)
    original = _sidecar([xml, weights])
    written = write_sidecar(xml, original)
    assert written == tmp_path / "model.xml.json" == sidecar_path(xml)
    data = json.loads(written.read_text(encoding="utf-8"))
    assert data["schema"] == SCHEMA == "edgeprune.artifact-sidecar/1"
    assert data["files"] == {"model.xml": file_sha256(xml), "model.bin": file_sha256(weights)}
    assert data["input"]["layout"] == "NCHW" and data["input"]["value_range"] == [0.0, 1.0]
    assert data["created_utc"].endswith("Z")
    assert read_sidecar(xml) == original
    assert read_sidecar(xml).to_dict() == data


def test_null_plan_and_unknown_normalisation_round_trip(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx bytes")
    original = _sidecar([model], format="onnx", runtime="onnxruntime", plan_sha256=None,
                        input=InputSpec("x", (1, 32, 32, 3), "NHWC", value_range=None))
    write_sidecar(model, original)
    assert read_sidecar(model) == original
    assert read_sidecar(model).input.mean is None


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4096), min_size=1, max_size=5),
       mean=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=3),
       layout=st.sampled_from(["NCHW", "NHWC"]), name=st.text(min_size=1, max_size=20))
def test_input_spec_survives_json(shape: list[int], mean: list[float], layout: str, name: str) -> None:
    spec = InputSpec(name, tuple(shape), layout, mean=tuple(mean), std=tuple(abs(m) + 1 for m in mean))
    assert InputSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_a_modified_weights_file_is_detected(tmp_path: Path) -> None:
    xml, weights = _ir_files(tmp_path)
    write_sidecar(xml, _sidecar([xml, weights]))
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=r"model\.bin does not match its sidecar") as info:
        read_sidecar(xml)
    assert info.value.exit_code == 3
    assert "\n" not in str(info.value)
    assert read_sidecar(xml, verify=False).files["model.bin"] != file_sha256(weights)


def test_a_missing_file_is_detected(tmp_path: Path) -> None:
    xml, weights = _ir_files(tmp_path)
    write_sidecar(xml, _sidecar([xml, weights]))
    weights.unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"model\.bin is missing"):
        read_sidecar(xml)


def test_a_sidecar_that_does_not_list_the_artifact_itself_vouches_for_nothing(tmp_path: Path) -> None:
    xml, weights = _ir_files(tmp_path)
    write_sidecar(xml, _sidecar([], files={"model.xml": file_sha256(xml)}))  # model.bin left out
    with pytest.raises(ArtifactIntegrityError, match=r"does not list model\.bin"):
        read_sidecar(xml)


@pytest.mark.parametrize("name", ["../model.bin", "/etc/passwd", "sub/model.bin"])
def test_file_names_must_stay_beside_the_sidecar(tmp_path: Path, name: str) -> None:
    xml, weights = _ir_files(tmp_path)
    write_sidecar(xml, _sidecar([], files={"model.xml": file_sha256(xml), name: "00" * 32}))
    with pytest.raises(InputError, match="not a plain file name"):
        read_sidecar(xml)


def test_other_json_is_not_taken_for_a_sidecar(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    sidecar_path(model).write_text(json.dumps({"schema": "something/2"}), encoding="utf-8")
    with pytest.raises(InputError, match="not an edgeprune sidecar"):
        read_sidecar(model)
    sidecar_path(model).write_text(json.dumps({"schema": SCHEMA, "format": "onnx"}), encoding="utf-8")
    with pytest.raises(InputError, match="malformed"):
        read_sidecar(model)
    sidecar_path(model).write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        read_sidecar(model)
    sidecar_path(model).unlink()
    with pytest.raises(InputError, match="no sidecar"):
        read_sidecar(model)


def test_layout_must_be_known() -> None:
    with pytest.raises(InputError, match="layout"):
        InputSpec("x", (1, 3, 8, 8), "CHWN")


def test_a_sidecar_can_be_added_to_an_existing_artifact(tmp_path: Path) -> None:
    from edgeprune.export import write_artifact_sidecar
    from edgeprune.target import load_target

    model = tmp_path / "model.onnx"
    model.write_bytes(b"measured artifact")
    written = write_artifact_sidecar(model, "onnx", target=load_target("cpu"), input_name="input",
                                     input_shape=(1, 3, 32, 32), plan_digest="ef" * 32)
    assert read_sidecar(model) == written
    assert written.runtime == "onnxruntime" and written.files == {"model.onnx": file_sha256(model)}
    assert written.input.mean is None and written.input.value_range is None

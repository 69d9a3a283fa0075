"""``edgeprune validate`` and ``edgeprune export`` end to end, with real runtimes: exit 0 on a faithful artifact,
3 with the failing number on a wrong one, 2 with one line on bad input; foreign ONNX files are accepted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cli_in_process import run_cli_in_process
from onnx import TensorProto, helper, numpy_helper
from slim_outputs import SlimOutputs

from edgeprune.cli.main import main
from edgeprune.export import read_sidecar
from edgeprune.prune.plan import load_slim_model

FAST = ["--timing-seconds", "0.05"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    done = run_cli_in_process(*argv)
    return done.returncode, done.stdout, done.stderr


def test_a_faithful_artifact_passes_with_json_figures(slim_outputs: SlimOutputs,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "validate", str(slim_outputs.good_onnx), "--reference", str(slim_outputs.good),
                          "--json", *FAST)
    assert code == 0, err
    result = json.loads(out)
    assert result["passed"] and result["sidecar_verified"]
    assert result["parity"]["max_abs_diff_relative"] <= 1e-3
    assert result["parity"]["top1_agreement_fraction"] == 1.0
    latency = result["latency"]
    assert latency["source"] == "measured-local" and latency["backend"] == "onnxruntime"
    assert latency["threads"] == 1 and latency["precision"] == "fp32" and latency["runtime_version"]
    assert 0 < latency["median_ms"] <= latency["p90_ms"]


def test_an_artifact_with_other_weights_fails_with_exit_3_naming_the_number(
        slim_outputs: SlimOutputs, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "validate", str(slim_outputs.other_onnx), "--reference", str(slim_outputs.good),
                          *FAST)
    assert code == 3
    line = " ".join(err.split())  # rich may wrap the one line on a narrow terminal
    assert "model.onnx failed validation" in line and "max_abs_diff_relative" in line and "limit 0.001" in line
    number = float(line.split("max_abs_diff_relative ")[1].split()[0])
    assert number > 1e-3
    assert "FAIL" in out


def test_the_reference_may_be_another_artifact(slim_outputs: SlimOutputs, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "validate", str(slim_outputs.other_onnx), "--reference", str(slim_outputs.good_onnx),
                        "--timing-seconds", "0")
    assert code == 3 and "other-export/model.onnx failed validation" in " ".join(err.split())
    code, _, err = _run(capsys, "validate", str(slim_outputs.good_onnx), "--reference", str(slim_outputs.good_onnx),
                        "--timing-seconds", "0")
    assert code == 0, err


def test_a_tampered_artifact_fails_its_sidecar_check(slim_outputs: SlimOutputs, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copy(slim_outputs.good_onnx, copy)
    shutil.copy(slim_outputs.good_onnx.with_name("model.onnx.json"), tmp_path / "model.onnx.json")
    shutil.copy(slim_outputs.other_onnx, copy)  # same name, other weights: the sidecar no longer matches
    code, _, err = _run(capsys, "validate", str(copy), *FAST)
    assert code == 3 and "does not match its sidecar" in err


def test_accuracy_is_scored_and_enforced_on_labelled_data(slim_outputs: SlimOutputs, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)
    from edgeprune.data.tensors import to_model_input
    from edgeprune.models.zoo import CIFAR_PREPROCESSING

    with torch.no_grad():
        predicted = load_slim_model(slim_outputs.good)(to_model_input(pixels, CIFAR_PREPROCESSING)).argmax(1).numpy()
    np.savez(tmp_path / "right.npz", x=pixels, y=predicted)
    np.savez(tmp_path / "wrong.npz", x=pixels, y=(predicted + 1) % 10)
    code, out, err = _run(capsys, "validate", str(slim_outputs.good_onnx), "--data", str(tmp_path / "right.npz"),
                          "--min-accuracy", "0.9", "--json", "--timing-seconds", "0")
    assert code == 0, err
    assert json.loads(out)["accuracy"]["top1_accuracy_fraction"] == 1.0
    code, _, err = _run(capsys, "validate", str(slim_outputs.good_onnx), "--data", str(tmp_path / "wrong.npz"),
                        "--min-accuracy", "0.9", "--timing-seconds", "0")
    assert code == 3 and "top1_accuracy_fraction 0 < limit 0.9" in " ".join(err.split())
    # top-1 at chance on 24 labelled images: the labels, not the model, are the likely fault, and validate says so
    assert "the model's top-1 on the labelled data is 0.00% on 24 images, no better than chance" in " ".join(err.split())


def test_class_folders_are_read_by_class_index_or_by_a_class_map(slim_outputs: SlimOutputs, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The artifact's 10 outputs number the classes: folders named 0..9 are those classes, other names are mapped
    by --class-map; a folder beyond the classes, a bad map and a map without --data are one line each."""
    from PIL import Image

    from edgeprune.data.tensors import to_model_input
    from edgeprune.models.zoo import CIFAR_PREPROCESSING

    pixels = np.random.default_rng(2).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        predicted = load_slim_model(slim_outputs.good)(to_model_input(pixels, CIFAR_PREPROCESSING)).argmax(1).numpy()
    for layout, name in (("index", str), ("named", lambda label: f"class {label}")):
        for i, label in enumerate(predicted):
            (tmp_path / layout / name(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i]).save(tmp_path / layout / name(label) / f"{i}.png")
    (tmp_path / "map.txt").write_text("".join(f"class {label} {label}\n" for label in range(10)))
    for layout, extra in (("index", ()), ("named", ("--class-map", str(tmp_path / "map.txt")))):
        code, out, err = _run(capsys, "validate", str(slim_outputs.good_onnx), "--data", str(tmp_path / layout),
                              *extra, "--json", "--timing-seconds", "0")
        assert code == 0, err
        accuracy = json.loads(out)["accuracy"]
        assert accuracy["top1_accuracy_fraction"] == 1.0, layout
        assert accuracy["label_check"]["classes"] == 10 and not accuracy["label_check"]["suspect"]
    (tmp_path / "index" / "10").mkdir()
    Image.fromarray(pixels[0]).save(tmp_path / "index" / "10" / "x.png")
    (tmp_path / "bad.json").write_text('{"class 1": "one"}')
    for extra, line in ((("--data", str(tmp_path / "index")), "class folder '10' is read as a class index (folders "
                         "named by integers are class indices), but the model has 10 classes (0..9)"),
                        (("--data", str(tmp_path / "named"), "--class-map", str(tmp_path / "bad.json")),
                         "'class 1' maps to \"one\", expected a class index"),
                        (("--class-map", str(tmp_path / "map.txt")), "--class-map names the class folders of --data")):
        code, _, err = _run(capsys, "validate", str(slim_outputs.good_onnx), *extra, "--timing-seconds", "0")
        assert code == 2 and line in " ".join(err.split()) and "Traceback" not in err, err


def _foreign_onnx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """conv(3→4, 3x3) → global average pool → flatten, built with onnx.helper (no edgeprune, no sidecar)."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["c"], ["p"]),
         helper.make_node("Flatten", ["p"], ["scores"])],
        "foreign",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return weight, bias


def test_a_foreign_onnx_file_is_validated_and_compared_with_pytorch(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "foreign.onnx"
    weight, bias = _foreign_onnx(path)
    code, out, err = _run(capsys, "validate", str(path), "--json", *FAST)
    assert code == 0, err
    result = json.loads(out)
    assert not result["sidecar_verified"] and result["input"] == {"name": "image", "shape": [1, 3, 16, 16],
                                                                  "layout": "NCHW"}
    assert result["latency"]["median_ms"] > 0

    from edgeprune.target import load_target
    from edgeprune.timing import TimingSpec
    from edgeprune.validate.artifact_check import validate_artifact

    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        conv.bias.copy_(torch.from_numpy(bias))
    reference = torch.nn.Sequential(conv, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    passed = validate_artifact(path, load_target("cpu"), reference=reference, measure=False)
    assert passed.parity is not None and passed.parity["max_abs_diff_output_units"] < 1e-4
    json.dumps(passed.to_dict())
    with torch.no_grad():
        conv.bias.add_(1.0)
    from edgeprune.errors import ValidationFailedError

    with pytest.raises(ValidationFailedError, match=r"foreign\.onnx failed validation .*max_abs_diff_relative"):
        validate_artifact(path, load_target("cpu"), reference=reference, timing=TimingSpec(min_runs=5, min_seconds=0))


def test_a_corrupt_or_invalid_onnx_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    code, out, err = _run(capsys, "validate", str(corrupt))
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "corrupt.onnx is not a valid ONNX model" in err
    invalid = tmp_path / "invalid.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["undefined"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(invalid))
    code, _, err = _run(capsys, "validate", str(invalid))
    assert code == 2 and "invalid.onnx is not a valid ONNX model" in err and "Traceback" not in err


def test_bad_arguments_are_exit_2(slim_outputs: SlimOutputs, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "validate", str(tmp_path / "missing.onnx"))
    assert code == 2 and "not found" in err
    code, _, err = _run(capsys, "validate", str(slim_outputs.good_onnx), "--min-accuracy", "0.5")
    assert code == 2 and "labelled data" in err
    with pytest.raises(SystemExit) as info:
        main(["export", "--from", str(slim_outputs.good), "--export", "onnx,tflit", "--out", str(tmp_path)])
    assert info.value.code == 2 and "Did you mean 'tflite'" in capsys.readouterr().err


def test_export_verb_writes_artifacts_and_keeps_them_without_force(
        slim_outputs: SlimOutputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deploy"
    code, _, err = _run(capsys, "export", "--from", str(slim_outputs.good / "plan.json"),
                        "--weights", str(slim_outputs.other / "model.safetensors"), "--export", "onnx", "--nhwc",
                        "--out", str(out))
    assert code == 0, err
    sidecar = read_sidecar(out / "model.onnx")
    assert sidecar.input.layout == "NHWC" and sidecar.input.shape == (1, 32, 32, 3)
    assert sidecar.plan_sha256 and len(sidecar.plan_sha256) == 64
    # the NHWC artifact of the 'other' weights matches the 'other' model fed NCHW, not the 'good' one
    code, _, err = _run(capsys, "validate", str(out / "model.onnx"), "--reference", str(slim_outputs.other),
                        "--timing-seconds", "0")
    assert code == 0, err
    code, _, _ = _run(capsys, "validate", str(out / "model.onnx"), "--reference", str(slim_outputs.good),
                      "--timing-seconds", "0")
    assert code == 3
    code, _, err = _run(capsys, "export", "--from", str(slim_outputs.good), "--export", "onnx", "--out", str(out))
    assert code == 2 and "--force" in err
    assert read_sidecar(out / "model.onnx").input.layout == "NHWC"


def test_latency_against_a_reference_artifact_is_paired(slim_outputs: SlimOutputs,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The same file as its own reference: timed in alternating rounds, the ratio is about 1 (a second of rounds:
    with 0.3 s, a run with another job on the other core read 1.29)."""
    code, out, err = _run(capsys, "validate", str(slim_outputs.good_onnx), "--reference", str(slim_outputs.good_onnx),
                          "--timing-seconds", "1.0", "--json")
    assert code == 0, err
    pair = json.loads(out)["latency"]["paired_with_reference"]
    assert pair["rounds"] >= 6 and len(pair["reference_round_ms"]) == pair["rounds"]
    assert 0.8 < pair["ratio"] < 1.25 and pair["ratio_low"] <= pair["ratio"] <= pair["ratio_high"]

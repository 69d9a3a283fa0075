"""edgeprune.target: built-in and user TOML targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeprune.errors import InputError, UnknownNameError
from edgeprune.target import Target, all_targets, builtin_target_names, load_target


def test_builtin_cpu_target_fields() -> None:
    target = load_target("cpu")
    assert isinstance(target, Target)
    assert target.name == "cpu"
    assert target.runtime == "onnxruntime"
    assert target.device == "cpu"
    assert target.threads == 1
    assert target.precision == "fp32"
    assert target.channel_alignment == 8
    assert target.latency_source == "measured-local"
    assert target.input_shape is None
    assert target.description  # non-empty
    assert target.runtime_installed()


def test_builtin_names_include_cpu() -> None:
    assert "cpu" in builtin_target_names()
    assert builtin_target_names() == sorted(builtin_target_names())
    assert "cpu" in [t.name for t in all_targets()]


def test_unknown_name_suggests_close_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # so 'cpuu' cannot be an existing path
    with pytest.raises(UnknownNameError) as info:
        load_target("cpuu")
    message = str(info.value)
    assert "Did you mean 'cpu'?" in message
    assert "Known: " in message and "cpu" in message
    assert info.value.known == builtin_target_names()
    assert info.value.exit_code == 2


def _write(tmp_path: Path, body: str, name: str = "board.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_custom_target_file_loads_with_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, 'name = "board"\nruntime = "onnxruntime"\n')
    target = load_target(path)
    assert target == Target(name="board", description="board", runtime="onnxruntime")
    assert target.threads == 1 and target.channel_alignment == 1 and target.precision == "fp32"


def test_custom_target_file_all_fields(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        name = "npu"
        description = "an NPU"
        runtime = "openvino"
        device = "NPU"
        threads = 4
        precision = "fp16"
        channel_alignment = 16
        latency_source = "predicted-profile"
        profile = "intel-npu"
        input_shape = [3, 64, 64]
        """.replace("        ", ""),
    )
    target = load_target(str(path))  # a string path works too
    assert target.name == "npu"
    assert target.description == "an NPU"
    assert target.runtime == "openvino"
    assert target.device == "NPU"
    assert target.threads == 4
    assert target.precision == "fp16"
    assert target.channel_alignment == 16
    assert target.latency_source == "predicted-profile"
    assert target.input_shape == (3, 64, 64)
    assert target.profile == "intel-npu"


def test_predicted_target_without_a_profile_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, 'name = "x"\nruntime = "litert"\nlatency_source = "predicted-profile"\n')
    with pytest.raises(InputError, match="needs a 'profile'"):
        load_target(path)


def test_malformed_toml_is_input_error(tmp_path: Path) -> None:
    path = _write(tmp_path, 'name = "x"\nruntime = \n')
    with pytest.raises(InputError, match="not valid TOML"):
        load_target(path)


def test_non_utf8_toml_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b'name = "caf\xe9"\nruntime = "onnxruntime"\n')
    with pytest.raises(InputError, match="not valid TOML"):
        load_target(path)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('runtime = "onnxruntime"\n', "missing required key 'name'"),
        ('name = "x"\n', "missing required key 'runtime'"),
        ('name = "x"\nruntime = "tensorrt"\n', "runtime 'tensorrt' is not one of"),
        ('name = "x"\nruntime = "onnxruntime"\nprecision = "fp8"\n', "precision must be one of"),
        ('name = "x"\nruntime = "onnxruntime"\nlatency_source = "guess"\n', "latency_source must be one of"),
        ('name = "x"\nruntime = "onnxruntime"\ncolour = "red"\n', r"unknown key\(s\) colour"),
        ('name = "x"\nruntime = "onnxruntime"\nthreads = 0\n', "'threads' must be a positive integer, got 0"),
        ('name = "x"\nruntime = "onnxruntime"\nthreads = -2\n', "'threads' must be a positive integer"),
        ('name = "x"\nruntime = "onnxruntime"\nthreads = "2"\n', "'threads' must be a positive integer, got '2'"),
        ('name = "x"\nruntime = "onnxruntime"\nthreads = 1.5\n', "'threads' must be a positive integer"),
        ('name = "x"\nruntime = "onnxruntime"\nthreads = true\n', "'threads' must be a positive integer, got True"),
        ('name = "x"\nruntime = "onnxruntime"\nchannel_alignment = 0\n', "'channel_alignment' must be a positive"),
    ],
)
def test_invalid_target_files_are_input_errors(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load_target(_write(tmp_path, body))


def test_missing_toml_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="target file not found"):
        load_target(tmp_path / "nope.toml")


def test_directory_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="target file not found"):
        load_target(tmp_path)


def test_runtime_of_wrong_type_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_target(_write(tmp_path, 'name = "x"\nruntime = ["onnxruntime"]\n'))


@pytest.mark.parametrize("shape", ['["a", 32, 32]', "3"])
def test_bad_input_shape_is_input_error(tmp_path: Path, shape: str) -> None:
    with pytest.raises(InputError):
        load_target(_write(tmp_path, f'name = "x"\nruntime = "onnxruntime"\ninput_shape = {shape}\n'))


def test_a_folder_named_like_a_target_does_not_shadow_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu").mkdir()  # e.g. an output folder a user called cpu
    (tmp_path / "cpu-openvino").write_text("not a target file")
    assert load_target("cpu").name == "cpu"
    assert load_target("cpu-openvino").runtime == "openvino"
    (tmp_path / "mine").write_text('name = "mine"\nruntime = "onnxruntime"\n')
    assert load_target("mine").name == "mine"  # a file that is no built-in name is still read
    with pytest.raises(InputError, match="target file not found"):
        load_target("./cpu")  # written as a path: read as one


def test_a_target_offers_its_precisions_and_refuses_others(tmp_path: Path) -> None:
    cpu = load_target("cpu")
    assert cpu.precisions == ("fp32", "int8") and cpu.with_precision("int8").precision == "int8"
    assert cpu.with_precision(None) is cpu
    assert load_target("intel-npu").with_precision("int8").precision == "int8"  # its profile's INT8 estimate
    with pytest.raises(InputError, match="offers precision fp16, int8, not bf16"):
        load_target("intel-npu").with_precision("bf16")
    bad = tmp_path / "t.toml"
    bad.write_text('name = "t"\nruntime = "onnxruntime"\nprecisions = ["fp64"]\n')
    with pytest.raises(InputError, match="'precisions' must be a list"):
        load_target(bad)
    custom = tmp_path / "u.toml"
    custom.write_text('name = "u"\nruntime = "onnxruntime"\nprecision = "fp32"\n')
    assert load_target(custom).precisions == ("fp32",)  # the default precision is always offered

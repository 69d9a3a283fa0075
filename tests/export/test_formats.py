"""Parsing --export and choosing the runtime (and target settings) each format runs with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edgeprune.errors import InputError, MissingRuntimeError, UnknownNameError
from edgeprune.export.formats import format_of_path, parse_formats, require_runtime, runtime_target
from edgeprune.target import load_target


def test_formats_are_parsed_in_order_without_duplicates() -> None:
    assert parse_formats("onnx,openvino,tflite") == ("onnx", "openvino", "tflite")
    assert parse_formats(" TFLite, onnx ,tflite") == ("tflite", "onnx")
    assert parse_formats(["ir", "litert"]) == ("openvino", "tflite")


def test_an_unknown_format_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown export format 'tflit'\. Did you mean 'tflite'\?"):
        parse_formats("onnx,tflit")
    with pytest.raises(InputError, match="no export format"):
        parse_formats(" , ")


def test_format_of_a_path_comes_from_its_suffix() -> None:
    assert format_of_path(Path("a/model.ONNX")) == "onnx"
    assert format_of_path(Path("model.xml")) == "openvino"
    assert format_of_path(Path("model.tflite")) == "tflite"
    with pytest.raises(InputError, match=r"\.onnx, \.xml, \.tflite"):
        format_of_path(Path("model.pt"))


def test_a_format_of_another_runtime_keeps_threads_but_runs_fp32_on_cpu() -> None:
    npu = load_target("intel-npu")
    assert runtime_target(npu, "openvino") is npu
    tflite = runtime_target(npu, "tflite")
    assert (tflite.runtime, tflite.device, tflite.precision, tflite.threads) == ("litert", "cpu", "fp32", npu.threads)
    assert tflite.latency_source == "measured-local"


def test_a_missing_runtime_names_its_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(MissingRuntimeError, match=r"OpenVINO .*pip install 'edgeprune\[openvino\]'"):
        require_runtime("openvino")
    require_runtime("onnxruntime")

"""``--runtime``: what it means per target, how a target in another runtime looks, and the rule that picks among ties.

The measurements themselves (export, parity, paired timing in every runtime) run in the e2e tests
(``tests/e2e/test_fit_runtime_auto.py``); here are the decisions made on what was measured.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgeprune.errors import InputError
from edgeprune.fit.runtime_choice import AUTO, RuntimeTrial, _fastest, in_runtime, resolve_runtime, runtimes_of
from edgeprune.runtimes import RUNTIME_NAMES
from edgeprune.target import load_target


def test_auto_is_the_default_only_for_targets_listing_several_runtimes() -> None:
    assert resolve_runtime(None, load_target("rpi4")) == AUTO
    assert resolve_runtime(None, load_target("cpu")) == "onnxruntime"
    assert resolve_runtime("auto", load_target("cpu")) == AUTO
    assert resolve_runtime("ncnn", load_target("cpu")) == "ncnn"
    assert runtimes_of(load_target("cpu")) == RUNTIME_NAMES  # auto on a target that lists none: every runtime
    assert runtimes_of(load_target("rpi5"))[0] == "litert"  # the target's own first


def test_a_runtime_that_does_not_exist_or_that_the_target_lacks_is_one_line() -> None:
    with pytest.raises(InputError, match="not a runtime edgeprune has") as unknown:
        resolve_runtime("tensorrt", load_target("cpu"))
    narrow = dataclasses.replace(load_target("rpi4"), runtimes=("litert", "ncnn"))
    with pytest.raises(InputError, match="runs litert, ncnn") as lacking:
        resolve_runtime("openvino", narrow)
    assert "\n" not in str(unknown.value) + str(lacking.value)


def test_another_runtime_runs_on_the_cpu_at_the_precisions_it_has() -> None:
    cpu_int8 = load_target("cpu").with_precision("int8")
    ncnn = in_runtime(cpu_int8, "ncnn")
    assert (ncnn.runtime, ncnn.precision, ncnn.precisions) == ("ncnn", "fp32", ("fp32",))  # no INT8 quantizer
    executorch = in_runtime(cpu_int8, "executorch")
    assert (executorch.precision, executorch.precisions) == ("int8", ("fp32", "int8"))
    npu = load_target("intel-npu")
    assert in_runtime(npu, "openvino") is npu  # its own runtime keeps its device
    assert in_runtime(npu, "litert").device == "cpu"


def test_a_target_file_lists_its_runtimes(tmp_path: Path) -> None:
    path = tmp_path / "box.toml"
    path.write_text('name = "box"\nruntime = "onnxruntime"\nruntimes = ["ncnn", "onnxruntime"]\n')
    assert load_target(str(path)).runtimes == ("ncnn", "onnxruntime")
    path.write_text('name = "box"\nruntime = "ncnn"\nruntimes = ["litert"]\n')
    assert load_target(str(path)).runtimes == ("ncnn", "litert")  # its own runtime is always among them
    path.write_text('name = "box"\nruntime = "onnxruntime"\nruntimes = ["onnxruntime", "tensorrt"]\n')
    with pytest.raises(InputError, match="'runtimes' must be a list drawn from"):
        load_target(str(path))


def _trial(runtime: str, precision: str, ratio: float, width: float = 0.02) -> RuntimeTrial:
    return RuntimeTrial(runtime, precision, ratio=ratio, low=ratio - width, high=ratio + width)


def test_the_fastest_wins_unless_tied_and_ties_keep_the_targets_own_runtime() -> None:
    clear = [_trial("onnxruntime", "fp32", 1.0), _trial("ncnn", "fp32", 0.70), _trial("litert", "fp32", 1.3)]
    chosen, tied = _fastest(clear, "onnxruntime")
    assert chosen.runtime == "ncnn" and tied == [clear[1]]
    close = [_trial("onnxruntime", "int8", 0.31), _trial("litert", "int8", 0.30), _trial("executorch", "int8", 0.30)]
    chosen, tied = _fastest(close, "onnxruntime")
    assert chosen.runtime == "onnxruntime" and len(tied) == 3  # within each other's intervals: the target's own
    chosen, _ = _fastest(close[1:], "openvino")
    assert chosen.runtime == "executorch"  # not the target's own: the first with a per-layer profiler (LiteRT has none)
    failed = [_trial("ncnn", "fp32", 0.5), _trial("onnxruntime", "fp32", 1.0)]
    failed[0].status = "failed: ncnn has no layer for Tensor.slice"
    assert _fastest(failed, "onnxruntime")[0].runtime == "onnxruntime"  # an unfaithful file is never chosen

"""``--precision auto`` (issue 20): which targets start with INT8 candidates, and the measured choice."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from model_helpers import conv_stack, randomise_bn

from edgeprune.quantize.backend import Int8Backend
from edgeprune.quantize.choice import MIN_INT8_AGREEMENT, MIN_INT8_SPEEDUP, auto_target, choose_precision
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.target import load_target
from edgeprune.validate.accuracy import top1_agreement


@pytest.mark.parametrize(("name", "measured", "estimated", "expected"), [
    ("cpu", True, False, "int8"), ("cpu-openvino", True, False, "int8"), ("cpu-tflite", True, False, "int8"),
    ("rpi4", False, False, "fp32"),  # neither measured nor estimated: nothing to choose from
    ("rpi4", False, True, "int8"),  # its shipped profile's INT8 estimate (labelled predicted)
    ("intel-npu", False, True, "int8"),
])
def test_auto_starts_with_int8_candidates_only_where_int8_latency_is_known(name: str, measured: bool, estimated: bool,
                                                                          expected: str) -> None:
    assert auto_target(load_target(name), measured, estimated).precision == expected


def test_auto_keeps_a_target_that_lists_no_int8(tmp_path: Path) -> None:
    path = tmp_path / "fp32-only.toml"
    path.write_text('name = "fp32-only"\nruntime = "onnxruntime"\nprecision = "fp32"\n')
    assert auto_target(load_target(path), measured=True).precision == "fp32"


def test_int8_is_chosen_only_when_it_is_faster_and_agrees() -> None:
    assert choose_precision(2.3, 0.99, 512).precision == "int8"
    slow = choose_precision(MIN_INT8_SPEEDUP - 0.01, 1.0, 512)
    assert slow.precision == "fp32" and "not faster" in slow.reason
    wrong = choose_precision(3.0, MIN_INT8_AGREEMENT - 0.01, 512)
    assert wrong.precision == "fp32" and "changes too many predictions" in wrong.reason
    assert choose_precision(MIN_INT8_SPEEDUP, MIN_INT8_AGREEMENT, 512).precision == "int8"  # the bounds count
    assert choose_precision(2.0, 0.99, 64).to_dict()["min_agreement"] == MIN_INT8_AGREEMENT


def test_agreement_is_measured_in_the_runtime_on_the_artifact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomise_bn(conv_stack(3, 16, classes=5)).eval()
    images = torch.rand(64, 3, 16, 16)
    target = load_target("cpu")
    backend = OnnxRuntimeBackend()
    artifact = Int8Backend(backend, images.numpy()).export(model, images[:1], tmp_path / "m", target)
    session = backend.load(artifact, target)
    agreement = top1_agreement(session, artifact.input_name, model, images)
    assert agreement >= 0.9
    other = copy.deepcopy(model)
    with torch.no_grad():  # another classifier: the same artifact now disagrees with it
        last = [m for m in other.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.copy_(last.weight.flip(0))
        last.bias.copy_(last.bias.flip(0))
    assert top1_agreement(session, artifact.input_name, other, images) < agreement

"""INT8 OpenVINO IR by NNCF's post-training quantization (issue 20), run in the real runtime on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import conv_stack, randomise_bn

from edgeprune.quantize.backend import Int8Backend
from edgeprune.runtimes.openvino.backend import OpenVinoBackend
from edgeprune.runtimes.openvino.int8 import openvino_is_quantized
from edgeprune.target import load_target
from edgeprune.validate.artifact_check import ModelInputs, validate_artifact

pytest.importorskip("nncf", reason="NNCF is part of the openvino extra")


def test_nncf_writes_an_int8_ir_that_agrees_with_the_float_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomise_bn(conv_stack(3, 16, classes=5))
    images = torch.rand(96, 3, 16, 16).numpy()
    target = load_target("cpu-openvino").with_precision("int8")
    backend = OpenVinoBackend()
    float_ir = backend.export(model, torch.from_numpy(images[:1]), tmp_path / "fp32", target)
    artifact = Int8Backend(backend, images[:64]).export(model, torch.from_numpy(images[:1]), tmp_path / "m", target)
    assert artifact.path == tmp_path / "m.xml" and (tmp_path / "m.bin").is_file()
    assert openvino_is_quantized(artifact.path) and not openvino_is_quantized(float_ir.path)
    held_out = images[64:]
    with torch.no_grad():
        expected = model(torch.from_numpy(held_out)).numpy()
    session = backend.load(artifact, target)
    got = np.concatenate([session.run({artifact.input_name: held_out[i:i + 1]})[0] for i in range(len(held_out))])
    assert np.abs(got - expected).max() / np.abs(expected).max() < 0.1
    result = validate_artifact(artifact.path, target, data=ModelInputs(held_out, None, "held out"), reference=model,
                               measure=False, raise_on_failure=False)
    assert result.passed and result.runtime["precision"] == "int8"

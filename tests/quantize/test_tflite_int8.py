"""Fully integer TFLite models by LiteRT's own quantizer (issue 20), run in the real interpreter on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from model_helpers import conv_stack, randomise_bn

from edgeprune.quantize.backend import Int8Backend
from edgeprune.runtimes.litert.backend import LiteRtBackend
from edgeprune.runtimes.litert.int8 import tflite_is_quantized
from edgeprune.target import load_target
from edgeprune.validate.artifact_check import ModelInputs, validate_artifact


def test_ai_edge_quantizer_writes_an_integer_model_that_agrees_with_the_float_one(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomise_bn(conv_stack(3, 16, classes=5))
    images = torch.rand(96, 3, 16, 16).numpy()
    target = load_target("cpu-tflite").with_precision("int8")
    backend = LiteRtBackend()
    float_model = backend.export(model, torch.from_numpy(images[:1]), tmp_path / "fp32", target)
    artifact = Int8Backend(backend, images[:64]).export(model, torch.from_numpy(images[:1]), tmp_path / "m", target)
    assert artifact.path == tmp_path / "m.tflite"
    assert tflite_is_quantized(artifact.path) and not tflite_is_quantized(float_model.path)
    held_out = images[64:]
    with torch.no_grad():
        expected = model(torch.from_numpy(held_out)).numpy()
    session = backend.load(artifact, target)  # float in, float out: the session (de)quantizes the int8 tensors
    got = np.concatenate([session.run({artifact.input_name: held_out[i:i + 1]})[0] for i in range(len(held_out))])
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() / np.abs(expected).max() < 0.1
    result = validate_artifact(artifact.path, target, data=ModelInputs(held_out, None, "held out"), reference=model,
                               measure=False, raise_on_failure=False)
    assert result.passed and result.runtime["precision"] == "int8"

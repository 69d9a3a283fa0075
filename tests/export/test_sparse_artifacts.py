"""Exported artifacts carry a weight-pruned model's zeros (read back from the files) and agree with PyTorch; the
zipped size shrinks with the zeros, the size on disk does not."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import ConcatNet, randomise_bn

from edgeprune.export.size import artifact_size, weight_zeros
from edgeprune.prune.sparsity import layer_sparsity, sparsify
from edgeprune.quantize.backend import Int8Backend
from edgeprune.runtimes.litert.backend import LiteRtBackend
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.runtimes.openvino.backend import OpenVinoBackend
from edgeprune.target import load_target

SPARSITY = 0.8


def _models() -> tuple[torch.nn.Module, torch.nn.Module, np.ndarray]:
    torch.manual_seed(0)
    dense = randomise_bn(ConcatNet()).eval()
    sparse = sparsify(copy.deepcopy(dense), SPARSITY)
    images = np.random.default_rng(0).standard_normal((24, 3, 16, 16)).astype(np.float32)
    return dense, sparse, images


def _outputs(backend, artifact, images: np.ndarray) -> np.ndarray:
    session = backend.load(artifact, load_target("cpu"))
    return np.concatenate([session.run({artifact.input_name: images[i:i + 1]})[0] for i in range(len(images))])


def _files(artifact) -> list[Path]:
    return [artifact.path] + ([artifact.path.with_suffix(".bin")] if artifact.format == "openvino" else [])


@pytest.mark.parametrize("backend_class", [OnnxRuntimeBackend, LiteRtBackend, OpenVinoBackend],
                         ids=["onnx", "tflite", "openvino"])
def test_float_artifacts_carry_the_zeros_and_agree_with_pytorch(backend_class, tmp_path: Path) -> None:
    backend = backend_class()
    if not backend.available():
        pytest.skip(f"{backend_class.__name__}'s runtime is not installed")
    dense, sparse, images = _models()
    zeros_pt = sum(layer.zeros for layer in layer_sparsity(sparse))
    params_pt = sum(layer.params for layer in layer_sparsity(sparse))
    target = load_target("cpu")
    example = torch.from_numpy(images[:1])
    sparse_artifact = backend.export(sparse, example, tmp_path / "sparse", target)
    dense_artifact = backend.export(dense, example, tmp_path / "dense", target)
    read = weight_zeros(sparse_artifact.path, sparse_artifact.format)
    assert read.params == params_pt  # every conv and linear weight found in the file, batch norms folded or not
    assert read.zeros == zeros_pt  # folding a batch norm scales a row: its zeros stay zeros, no new ones
    assert weight_zeros(dense_artifact.path, dense_artifact.format).zeros == 0
    with torch.no_grad():
        expected = sparse(torch.from_numpy(images)).numpy()
    got = _outputs(backend, sparse_artifact, images)
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    dense_size, sparse_size = artifact_size(_files(dense_artifact)), artifact_size(_files(sparse_artifact))
    assert sparse_size.raw_bytes == pytest.approx(dense_size.raw_bytes, rel=0.02)  # zeros in a dense tensor
    assert sparse_size.zip_bytes < 0.5 * dense_size.zip_bytes


@pytest.mark.parametrize(("backend_class", "target_name"), [(OnnxRuntimeBackend, "cpu"),
                                                           (OpenVinoBackend, "cpu-openvino"),
                                                           (LiteRtBackend, "cpu-tflite")],
                         ids=["onnx-qdq", "openvino-nncf", "tflite-ai-edge-quantizer"])
def test_int8_artifacts_keep_the_zeros(backend_class, target_name: str, tmp_path: Path) -> None:
    """Each runtime's own INT8 quantizer stores a zero weight as its zero point (symmetric weights: 0): it
    dequantizes to exactly 0, so sparsity and INT8 combine."""
    backend = backend_class()
    if not backend.available():
        pytest.skip(f"{backend_class.__name__}'s runtime is not installed")
    _, sparse, images = _models()
    target = load_target(target_name).with_precision("int8")
    artifact = Int8Backend(backend, images).export(sparse, torch.from_numpy(images[:1]), tmp_path / "q", target)
    read = weight_zeros(artifact.path, artifact.format)
    assert read.dtypes == ("int8",)
    assert read.params == sum(layer.params for layer in layer_sparsity(sparse))
    zeros_pt = sum(layer.zeros for layer in layer_sparsity(sparse))
    assert zeros_pt <= read.zeros and read.sparsity < SPARSITY + 0.02  # rounding may add a few, none are lost
    with torch.no_grad():
        expected = sparse(torch.from_numpy(images)).numpy()
    got = _outputs(backend, artifact, images)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.8

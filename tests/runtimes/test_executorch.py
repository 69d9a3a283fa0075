"""ExecuTorch runtime (``edgeprune.runtimes.executorch``) on real tiny models: export, run at parity with PyTorch,
time with 1 and 2 threads, ETDump profile, INT8 by PT2E, layer precisions read back, upload check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import randomise_bn
from torch import nn

from edgeprune.errors import InputError
from edgeprune.target import Target
from edgeprune.timing import TimingSpec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                reason="executorch is not installed (pip install executorch)")

TEST_SPEC = TimingSpec(warmup_runs=5, min_runs=30, min_seconds=0.1, retries=1)
PROFILE_SPEC = TimingSpec(warmup_runs=10, min_runs=50)
FP32 = Target("et", "ExecuTorch test", "executorch", threads=1)
INT8 = Target("et-int8", "ExecuTorch test", "executorch", threads=1, precision="int8")


class TinyResidual(nn.Module):
    """3 convs with BN+ReLU and a residual add, then a linear head (32x32 input)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.body(x)
        return self.head(torch.flatten(self.pool(self.down(x)), 1))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return randomise_bn(TinyResidual(), 1).eval()


@pytest.fixture(scope="module")
def example() -> torch.Tensor:
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def calibration() -> np.ndarray:
    return torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(2)).numpy()


@pytest.fixture(scope="module")
def fp32_artifact(model: nn.Module, example: torch.Tensor, tmp_path_factory: pytest.TempPathFactory):
    from edgeprune.runtimes.executorch.backend import ExecuTorchBackend

    return ExecuTorchBackend().export(model, example, tmp_path_factory.mktemp("et") / "model", FP32)


@pytest.fixture(scope="module")
def int8_artifact(model: nn.Module, example: torch.Tensor, calibration: np.ndarray,
                  tmp_path_factory: pytest.TempPathFactory):
    from edgeprune.runtimes.executorch.int8 import export_int8

    return export_int8(model, example, tmp_path_factory.mktemp("et-int8") / "model", INT8, calibration)


def _backend():
    from edgeprune.runtimes.executorch.backend import ExecuTorchBackend

    return ExecuTorchBackend()


def test_backend_names_and_version() -> None:
    backend = _backend()
    assert (backend.name, backend.artifact_format) == ("executorch", "pte")
    assert backend.available() and backend.version()


def test_export_writes_one_fully_delegated_pte(fp32_artifact, example: torch.Tensor) -> None:
    assert fp32_artifact.path.name == "model.pte" and fp32_artifact.path.stat().st_size > 0
    assert fp32_artifact.format == "pte" and fp32_artifact.input_shape == tuple(example.shape)
    assert sorted(p.name for p in fp32_artifact.path.parent.iterdir()) == ["model.pte"]  # no temp left behind


def test_run_matches_pytorch(fp32_artifact, model: nn.Module) -> None:
    session = _backend().load(fp32_artifact, FP32)
    for seed in range(3):
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = model(x).numpy()
        outputs = session.run({"input": x.numpy()})
        assert len(outputs) == 1 and outputs[0].shape == expected.shape
        assert float(np.abs(outputs[0] - expected).max()) <= 1e-3 * float(np.abs(expected).max())


@pytest.mark.parametrize("threads", [1, 2])
def test_time_with_one_and_two_threads(fp32_artifact, example: torch.Tensor, threads: int) -> None:
    import dataclasses

    session = _backend().load(fp32_artifact, dataclasses.replace(FP32, threads=threads))
    stats = session.time({"input": example.numpy()}, TEST_SPEC)
    assert stats.runs >= TEST_SPEC.min_runs and 0 < stats.min_ms <= stats.median_ms


def test_sessions_with_different_threads_stay_valid(fp32_artifact, example: torch.Tensor) -> None:
    """A session loaded before another reset the shared pool reloads itself instead of using a freed pool."""
    import dataclasses

    from edgeprune.runtimes.executorch.threadpool import POOL

    feed = {"input": example.numpy()}
    one = _backend().load(fp32_artifact, FP32)
    expected = one.run(feed)[0]
    two = _backend().load(fp32_artifact, dataclasses.replace(FP32, threads=2))
    generation = POOL.generation
    np.testing.assert_allclose(one.run(feed)[0], expected, rtol=0, atol=1e-6)  # reloads at 1 thread
    assert POOL.generation == generation + 1
    np.testing.assert_allclose(two.run(feed)[0], expected, rtol=0, atol=1e-5)


def test_profile_layers_names_xnnpack_operators(fp32_artifact, example: torch.Tensor) -> None:
    timings = _backend().load(fp32_artifact, FP32).profile_layers({"input": example.numpy()}, PROFILE_SPEC)
    convs = [t for t in timings if t.op_type.startswith("Convolution")]
    assert len(convs) == 3 and all(t.name.startswith("xnnpack@") for t in convs)
    assert any(t.op_type.startswith("Fully Connected") for t in timings)
    assert all(t.ms >= 0 for t in timings) and sum(t.ms for t in timings) > 0


def test_layer_precisions_fp32(fp32_artifact) -> None:
    from edgeprune.runtimes.executorch.layers import layer_precisions

    layers = layer_precisions(fp32_artifact.path)
    assert [layer.op_type for layer in layers] == ["conv2d", "conv2d", "conv2d", "linear"]
    assert {layer.precision for layer in layers} == {"fp32"}


def test_int8_export_agrees_and_reads_back_int8(int8_artifact, model: nn.Module) -> None:
    from edgeprune.runtimes.executorch.int8 import describe_int8, is_quantized
    from edgeprune.runtimes.executorch.layers import layer_precisions

    layers = layer_precisions(int8_artifact.path)
    assert len(layers) == 4 and {layer.precision for layer in layers} == {"int8"}
    assert is_quantized(int8_artifact.path)
    session = _backend().load(int8_artifact, INT8)
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(x).argmax(1).numpy()
    got = np.array([session.run({"input": x[i:i + 1].numpy()})[0].argmax() for i in range(len(x))])
    assert float((got == expected).mean()) >= 0.8
    assert describe_int8(32)["calibration_images"] == 32


def test_fp32_file_is_not_quantized(fp32_artifact) -> None:
    from edgeprune.runtimes.executorch.int8 import is_quantized

    assert not is_quantized(fp32_artifact.path)


def test_check_upload_accepts_pte_and_refuses_garbage(fp32_artifact, int8_artifact, tmp_path: Path) -> None:
    from edgeprune.runtimes.executorch.upload import check_upload

    check_upload(fp32_artifact.path)
    check_upload(int8_artifact.path)
    garbage = tmp_path / "garbage.pte"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="ET12"):
        check_upload(garbage)
    truncated = tmp_path / "truncated.pte"
    truncated.write_bytes(fp32_artifact.path.read_bytes()[:200])
    with pytest.raises(InputError):
        check_upload(truncated)


def test_upload_check_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; import edgeprune.runtimes.executorch.upload; "
            "assert 'torch' not in sys.modules and 'executorch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.full
def test_mobilenet_v2_depthwise_parity_and_int8(tmp_path: Path) -> None:
    import torchvision

    from edgeprune.runtimes.executorch.int8 import export_int8
    from edgeprune.runtimes.executorch.layers import layer_precisions

    torch.manual_seed(0)
    model = randomise_bn(torchvision.models.mobilenet_v2(num_classes=10), 3).eval()
    x = torch.randn(1, 3, 64, 64)
    artifact = _backend().export(model, x, tmp_path / "mb", FP32)
    with torch.no_grad():
        expected = model(x).numpy()
    out = _backend().load(artifact, FP32).run({"input": x.numpy()})[0]
    assert float(np.abs(out - expected).max()) <= 1e-3 * float(np.abs(expected).max())
    kinds = {layer.op_type for layer in layer_precisions(artifact.path)}
    assert {"conv2d", "dwconv2d", "linear"} <= kinds
    calibration = torch.randn(16, 3, 64, 64).numpy()
    q = export_int8(model, x, tmp_path / "mbq", INT8, calibration)
    assert {layer.precision for layer in layer_precisions(q.path)} == {"int8"}

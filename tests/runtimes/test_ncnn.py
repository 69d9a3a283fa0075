"""The ncnn runtime on real tiny models: pnnx export, fp32 parity, timing, per-layer profile, INT8 refusal,
layer precisions read back from the files, and the agent's upload check."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import randomise_bn
from torch import nn

from edgeprune.errors import InputError
from edgeprune.runtimes.base import Artifact
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ncnn") is None or importlib.util.find_spec("pnnx") is None,
    reason="the ncnn runtime needs the 'ncnn' and 'pnnx' packages (pip install ncnn pnnx)",
)

SPEC = TimingSpec(warmup_runs=5, min_runs=30, min_seconds=0.1, retries=1)
PROFILE_SPEC = TimingSpec(warmup_runs=10, min_runs=100)


class Block(nn.Module):
    """conv-BN + identity, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)) + x)


class TinyCnn(nn.Module):
    """Three convolutions with BN+ReLU and a residual add, a linear head; also returns the last feature map
    (3x3: a channel stride ncnn pads) so outputs' order and shapes are checked."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block = Block(16)
        self.down = nn.Sequential(nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(3))
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.down(self.block(self.stem(x)))
        return self.fc(features.mean((2, 3))), features


@pytest.fixture(scope="module")
def backend():  # noqa: ANN201 - the class is imported lazily, as edgeprune does
    from edgeprune.runtimes.ncnn.backend import NcnnBackend

    return NcnnBackend()


@pytest.fixture(scope="module")
def target():  # noqa: ANN201
    return load_target("cpu-ncnn")


@pytest.fixture(scope="module")
def tiny(backend, target, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    torch.manual_seed(0)
    model = randomise_bn(TinyCnn(), 1).eval()
    example = torch.randn(1, 3, 32, 32)
    folder = tmp_path_factory.mktemp("ncnn")
    artifact = backend.export(model, example, folder / "model", target)
    return model, example, artifact


def _feed(example: torch.Tensor) -> dict[str, np.ndarray]:
    return {"input": example.numpy()}


def test_export_writes_only_the_param_and_bin_named_after_modules(tiny) -> None:  # noqa: ANN001
    _, _, artifact = tiny
    assert isinstance(artifact, Artifact) and artifact.format == "ncnn"
    assert artifact.path.name == "model.ncnn.param" and artifact.input_name == "in0"
    assert artifact.input_shape == (1, 3, 32, 32)
    assert sorted(p.name for p in artifact.path.parent.iterdir()) == ["model.ncnn.bin", "model.ncnn.param"]
    names = [line.split()[1] for line in artifact.path.read_text().splitlines()[2:]]
    assert {"stem.0", "block.conv", "down.0", "fc"} <= set(names)


def test_export_is_deterministic_and_quiet(backend, target, tiny, tmp_path: Path,  # noqa: ANN001
                                           capfd: pytest.CaptureFixture[str]) -> None:
    model, example, first = tiny
    capfd.readouterr()
    again = backend.export(model, example, tmp_path / "model", target)
    backend.load(again, target).run(_feed(example))
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert again.path.read_bytes() == first.path.read_bytes()
    assert again.path.with_suffix(".bin").read_bytes() == first.path.with_suffix(".bin").read_bytes()


@pytest.mark.parametrize("threads", [1, 2])
def test_run_matches_pytorch_and_times(backend, tiny, threads: int) -> None:  # noqa: ANN001
    model, example, artifact = tiny
    session = backend.load(artifact, dataclasses.replace(load_target("cpu"), threads=threads))
    with torch.no_grad():
        expected = [t.numpy() for t in model(example)]
    outputs = session.run(_feed(example))
    assert [o.shape for o in outputs] == [e.shape for e in expected]
    for got, want in zip(outputs, expected):
        assert np.abs(got - want).max() <= 1e-3 * max(1.0, float(np.abs(want).max()))
    assert np.array_equal(session.run(_feed(example))[0], outputs[0])  # a fresh extractor each time
    stats = session.time(_feed(example), SPEC)
    assert stats.median_ms > 0 and stats.runs >= SPEC.min_runs


def test_profile_layers_names_modules_and_adds_up(backend, target, tiny) -> None:  # noqa: ANN001
    _, example, artifact = tiny
    session = backend.load(artifact, target)
    layers = session.profile_layers(_feed(example), PROFILE_SPEC)
    by_name = {layer.name: layer for layer in layers}
    assert by_name["stem.0"].op_type == "Convolution" and by_name["fc"].op_type == "InnerProduct"
    assert all(layer.ms >= 0 for layer in layers) and by_name["block.conv"].ms > 0
    total = sum(layer.ms for layer in layers)
    whole = session.time(_feed(example), SPEC).median_ms
    assert 0.5 * whole < total < 1.5 * whole, (total, whole)


def test_batch_over_one_is_refused_in_one_line(backend, target, tiny, tmp_path: Path) -> None:  # noqa: ANN001
    model, example, artifact = tiny
    with pytest.raises(InputError, match="batch 1") as caught:
        backend.export(model, example.repeat(2, 1, 1, 1), tmp_path / "b2", target)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="batch 1"):
        backend.load(artifact, target).run({"input": example.repeat(2, 1, 1, 1).numpy()})


def test_int8_is_refused_and_precisions_read_back(tiny, tmp_path: Path) -> None:  # noqa: ANN001
    from edgeprune.runtimes import backend_of
    from edgeprune.runtimes.base import Int8Request
    from edgeprune.runtimes.ncnn.int8 import is_quantized
    from edgeprune.runtimes.ncnn.layers import layer_precisions, weight_tensors

    model, example, artifact = tiny
    with pytest.raises(InputError, match="ncnn2table") as caught:
        backend_of("ncnn").export_int8(model, example, tmp_path / "q", load_target("cpu-ncnn"), example.numpy(),
                                  Int8Request("in0"))
    assert "\n" not in str(caught.value)
    weights = weight_tensors(artifact.path)  # the .bin's arrays, in layer order, as stored
    assert [w.shape[0] for w, _ in weights] == [p.shape[0] for n, p in model.named_parameters()
                                                if n.endswith("weight") and p.ndim > 1]
    layers = layer_precisions(artifact.path)
    assert [layer.name for layer in layers] == ["stem.0", "block.conv", "down.0", "fc"]
    assert {(layer.weights, layer.precision) for layer in layers} == {("fp32", "fp32")}
    assert not is_quantized(artifact.path)
    # an int8 file as ncnn2int8 writes it marks each quantized layer with int8_scale_term (id 8)
    text = artifact.path.read_text()
    int8 = tmp_path / "int8.ncnn.param"
    int8.write_text(re.sub(r"^((?:Convolution|InnerProduct)\s.*)$", r"\1 8=2", text, flags=re.M))
    (tmp_path / "int8.ncnn.bin").write_bytes(artifact.path.with_suffix(".bin").read_bytes())
    assert is_quantized(int8)
    assert {layer.precision for layer in layer_precisions(int8)} == {"int8"}


def test_check_upload(tiny, tmp_path: Path) -> None:  # noqa: ANN001
    from edgeprune.runtimes.ncnn.upload import check_upload

    _, _, artifact = tiny
    check_upload(artifact.path)
    bad = tmp_path / "bad.ncnn.param"
    cases = {
        b"\x00garbage\xff" * 10: "magic",
        b"7767517\n3 4\nInput in0 0 1 in0\n": "declares 3 layers",
        b"7767517\n999999999 4\n": "implausible",
        b"7767517\n2 2\nInput in0 0 1 in0\nReLU r 1 1 nowhere out0\n": "no layer produces",
    }
    (tmp_path / "bad.ncnn.bin").write_bytes(b"\0" * 8)
    for payload, reason in cases.items():
        bad.write_bytes(payload)
        with pytest.raises(InputError, match=reason) as caught:
            check_upload(bad)
        assert "\n" not in str(caught.value)
    bad.write_text(artifact.path.read_text())
    (tmp_path / "bad.ncnn.bin").write_bytes(b"")
    with pytest.raises(InputError, match="missing or empty"):
        check_upload(bad)


def test_mobilenet_v2_depthwise_parity(backend, target, tmp_path: Path) -> None:  # noqa: ANN001
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = randomise_bn(torchvision.models.mobilenet_v2(num_classes=10), 2).eval()
    example = torch.randn(1, 3, 64, 64)
    artifact = backend.export(model, example, tmp_path / "mnv2", target)
    from edgeprune.runtimes.ncnn.layers import layer_precisions

    layers = layer_precisions(artifact.path)
    assert sum(layer.op_type == "ConvolutionDepthWise" for layer in layers) == 17
    assert "features.1.conv.0.0" in {layer.name for layer in layers}
    with torch.no_grad():
        want = model(example).numpy()
    got = backend.load(artifact, target).run(_feed(example))[0]
    assert np.abs(got - want).max() <= 1e-3 * max(1.0, float(np.abs(want).max()))


class StridedSlice(nn.Module):
    """``x[:, :, ::2, ::2]``: pnnx leaves it as ``Tensor.slice``, which ncnn has no layer for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, :, ::2, ::2]


def test_an_operation_ncnn_cannot_run_is_named_in_one_line(backend, target, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="ncnn has no layer for Tensor.slice") as caught:
        backend.export(StridedSlice().eval(), torch.randn(1, 3, 8, 8), tmp_path / "m", target)
    assert "\n" not in str(caught.value) and not list(tmp_path.iterdir())


def test_a_yolo_detector_converts_with_its_anchor_grid_as_constants(backend, target, tmp_path: Path) -> None:  # noqa: ANN001
    """The Detect head builds its anchor grid with arange/meshgrid (no ncnn layers); real anchors are kept cached, so
    the trace takes them as constants and the whole detector runs in ncnn like in PyTorch."""
    from edgeprune.models.ultralytics_yolo import build_yolo

    model, _, _ = build_yolo("yolov8n.yaml", 3)
    x = torch.rand(1, 3, 64, 64)
    artifact = backend.export(model.eval(), x, tmp_path / "yolo", target)
    with torch.no_grad():
        expected = model(x)
    expected = (expected[0] if isinstance(expected, (tuple, list)) else expected).numpy()
    produced = backend.load(artifact, target).run({artifact.input_name: x.numpy()})[0]
    assert produced.shape == expected.shape
    assert np.abs(produced - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())

"""Per-layer latency: the real ONNX Runtime profiler on a model and its channel-pruned copy (no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import randomise_bn
from torch import nn

from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy
from edgeprune.report.layer_latency import match_layer_timings, per_layer_latency, predicted_layer_latency
from edgeprune.runtimes.base import LayerTiming
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

SPEC = TimingSpec(warmup_runs=10, min_runs=60)


class TwoConvNet(nn.Module):
    """conv(3→64) → conv(64→64) → pool → linear: pruning both groups to 16 channels cuts conv2 ~16x."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.head = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv2(self.conv1(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = randomise_bn(TwoConvNet()).eval()
    example = torch.randn(1, 3, 32, 32)
    keep = {g.name: list(range(0, g.width, 4)) for g in ModelGraph(model, example).prunable_groups()}
    assert set(keep) == {"conv1.0", "conv2.0"}
    slim = slim_copy(model, example, keep)
    target, backend = load_target("cpu"), OnnxRuntimeBackend()
    out = tmp_path_factory.mktemp("layer-latency")
    before = backend.export(model, example, out / "before", target)
    after = backend.export(slim, example, out / "after", target)
    return backend, target, before, after, example.numpy()


def test_profiles_match_and_the_pruned_convs_get_faster(artifacts) -> None:  # type: ignore[no-untyped-def]
    backend, target, before, after, x = artifacts
    result = per_layer_latency(backend, target, before, after, x, SPEC)
    assert result is not None
    assert result["source"] == "measured (onnxruntime profiler)" and result["unit"] == "ms"
    layers = result["layers"]
    assert layers and all(l["name"] and l["before_ms"] > 0 for l in layers)
    assert [l["before_ms"] for l in layers] == sorted((l["before_ms"] for l in layers), reverse=True)
    convs = [l for l in layers if l["op_type"] in ("Conv", "FusedConv")]
    assert len(convs) == 2, layers
    assert all(c["after_ms"] is not None and c["after_ms"] > 0 for c in convs), "convs not matched by name"
    assert {c.get("module", "")[:5] for c in convs} == {"conv1", "conv2"}, convs  # labelled by module path
    slowest = convs[0]
    # conv2 keeps 16 of 64 channels on each side (1/16 of its MACs): even a stalled profiling pass (per-kernel
    # medians over 60 runs) leaves it well under half its time, so one attempt decides
    assert slowest["after_ms"] < 0.5 * slowest["before_ms"], slowest
    assert result["total_after_ms"] < result["total_before_ms"]


def test_int8_convs_pair_with_the_float_ones_by_module(artifacts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """ONNX Runtime runs an INT8 file's convolutions as QLinearConv nodes with new names (``node_Conv_7_token_3``);
    they pair with the float model's by the module path each file's exporter metadata names (the per-layer plot
    of every INT8 fit drew all of them "removed or fused")."""
    from edgeprune.quantize.backend import Int8Backend

    backend, target, before, _, x = artifacts
    torch.manual_seed(0)
    model = randomise_bn(TwoConvNet()).eval()
    int8 = Int8Backend(backend, np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype(np.float32))
    after = int8.export(model, torch.from_numpy(x), tmp_path / "int8", target)
    result = per_layer_latency(backend, target, before, after, x, SPEC)
    assert result is not None
    convs = [l for l in result["layers"] if l.get("module", "").startswith(("conv1", "conv2"))]
    assert len(convs) == 2 and all(c["after_ms"] is not None for c in convs), result["layers"]
    assert all(c["after_name"] != c["name"] for c in convs)
    assert not {c["name"] for c in convs} & set(result["removed_or_fused"])


def test_nodes_pair_by_module_only_when_it_is_one_to_one() -> None:
    before = [LayerTiming("relu_nchwc", "Conv", 0.5), LayerTiming("x", "Conv", 0.1), LayerTiming("y", "Conv", 0.1)]
    after = [LayerTiming("node_Conv_1_token_4", "QLinearConv", 0.2), LayerTiming("node_Conv_2_token_5", "QLinearConv",
                                                                                0.05)]
    labels = {"relu_nchwc": "stem.0", "x": "block", "y": "block"}
    labels_after = {"node_Conv_1": "stem.0", "node_Conv_2": "block"}
    result = match_layer_timings(before, after, "measured (x profiler)", labels, labels_after)
    stem = result["layers"][0]
    assert stem["after_ms"] == 0.2 and stem["after_name"] == "node_Conv_1_token_4" and stem["module"] == "stem.0"
    assert sorted(result["removed_or_fused"]) == ["x", "y"]  # two before, one after: not guessed
    assert [u["name"] for u in result["unmatched_after"]] == ["node_Conv_2_token_5"]


def test_runtime_without_profiler_gives_none(tmp_path: Path) -> None:
    from edgeprune.runtimes.litert.backend import LiteRtBackend

    target, backend = load_target("cpu-tflite"), LiteRtBackend()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
    example = torch.randn(1, 3, 16, 16)
    artifact = backend.export(model, example, tmp_path / "m", target)
    assert per_layer_latency(backend, target, artifact, artifact, example.numpy(), SPEC) is None


def test_openvino_style_names_get_module_labels() -> None:
    timings = [LayerTiming("node_Conv_37/WithoutBiases", "Convolution", 0.3)]
    result = match_layer_timings(timings, timings, "measured (openvino profiler)", {"node_Conv_37": "layer1.0.bn1"})
    assert result["layers"][0]["module"] == "layer1.0.bn1"


def test_unmatched_nodes_are_reported() -> None:
    before = [LayerTiming("a", "Conv", 0.5), LayerTiming("b", "Relu", 0.1), LayerTiming("gone", "Add", 0.2)]
    after = [LayerTiming("a", "Conv", 0.2), LayerTiming("b", "Relu", 0.05), LayerTiming("new", "FusedConv", 0.1)]
    result = match_layer_timings(before, after, "measured (x profiler)", {"a": "layer1.conv"})
    assert [l["name"] for l in result["layers"]] == ["a", "gone", "b"]
    assert result["layers"][0]["module"] == "layer1.conv"
    assert result["layers"][1]["after_ms"] is None and result["removed_or_fused"] == ["gone"]
    assert result["unmatched_after"] == [{"name": "new", "op_type": "FusedConv", "after_ms": 0.1}]
    assert result["total_before_ms"] == pytest.approx(0.8) and result["total_after_ms"] == pytest.approx(0.35)


def test_predicted_breakdown_is_labelled_predicted() -> None:
    before = {"conv1": 0.4, "conv2": 0.9, "(rest of the model)": 0.05}
    after = {"conv1": 0.2, "conv2": 0.3, "(rest of the model)": 0.05}
    result = predicted_layer_latency(before, after)
    assert result["source"] == "predicted (latency table)" and result["unit"] == "ms"
    assert [l["name"] for l in result["layers"]] == ["conv2", "conv1", "(rest of the model)"]
    assert result["layers"][0] == {"name": "conv2", "before_ms": 0.9, "after_ms": 0.3}
    assert np.isclose(result["total_after_ms"], 0.55)

"""The runtime side of in-context layer times: a real export profiled by ONNX Runtime and OpenVINO, every node
matched to its layer (edgeprune.latency.in_context), and the runtimes without the means left to their probes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgeprune.latency.in_context_profiler import InContextProfiler
from edgeprune.latency.layers import extract_layers
from edgeprune.latency.timers import LocalTimer
from edgeprune.models.zoo import build_architecture
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target


@pytest.mark.parametrize("target_name", [pytest.param("cpu", marks=pytest.mark.full), "cpu-openvino"])
def test_every_layer_of_a_pruned_export_gets_its_in_context_time(tmp_path: Path, target_name: str) -> None:
    model = build_architecture("cifar-resnet8").model.eval()
    example = torch.full((1, 3, 32, 32), 0.5)
    graph = ModelGraph(model, example)
    layers = extract_layers(model, example, graph.groups)
    target = load_target(target_name)
    backend = get_backend(target)
    profiler = InContextProfiler.for_run(model, example, layers, backend, target, LocalTimer(backend, target),
                                         tmp_path, samples=12)
    assert profiler is not None
    keep = {g.name: list(range(g.width // 2)) for g in graph.prunable_groups()}
    # on OpenVINO the labels come from the full model's export: a channel-pruned CIFAR ResNet keeps its node names
    artifact = backend.export(slim_copy(model, example, keep), example, tmp_path / "half", target)
    times = profiler.layer_times(artifact, measured_ms=2.0)
    assert times is not None and set(times) == {layer.name for layer in layers}
    assert all(ms > 0 for ms in times.values()) and sum(times.values()) < 2.0  # the rest: layout, pooling, call


def test_runtimes_that_cannot_profile_here_keep_their_probes(tmp_path: Path) -> None:
    model = build_architecture("cifar-resnet8").model.eval()
    example = torch.full((1, 3, 32, 32), 0.5)
    layers = extract_layers(model, example, ModelGraph(model, example).groups)
    int8 = load_target("cpu").with_precision("int8")
    backend = get_backend(int8)
    assert InContextProfiler.for_run(model, example, layers, backend, int8, LocalTimer(backend, int8),
                                     tmp_path, samples=12) is None
    fp32 = load_target("cpu")
    timer = LocalTimer(get_backend(fp32), fp32)
    assert InContextProfiler.for_run(model, example, layers, get_backend(fp32), fp32, timer, tmp_path, samples=5) is None

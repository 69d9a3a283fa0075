"""Sparse 1x1 weights in TFLite files: XNNPACK's sparse-path rules, the CSR + DENSIFY writer (only when the rules
hold), parity with the dense file in the real LiteRT interpreter, and the paired speed-up measurement."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import MiniMobile
from torch import nn

from edgeprune.export.sparse_cpu import sparse_inference_verdict, sparse_kernels_on_cpu
from edgeprune.paired import PairingSpec
from edgeprune.runtimes.litert.backend import LiteRtBackend, LiteRtSession
from edgeprune.runtimes.litert.sparse_writer import write_sparse_tflite
from edgeprune.runtimes.litert.sparsity import QUALIFIES, check_sparse_rules
from edgeprune.target import load_target

TARGET = load_target("cpu-tflite")
SHAPE = (1, 3, 32, 32)


def _pruned(model: nn.Module, sparsity: float) -> nn.Module:
    """Zero the smallest-magnitude ``sparsity`` share of every 1x1 convolution's weights."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1):
                module.weight.normal_()
                w = module.weight
                k = int(round(sparsity * w.numel()))
                if k:
                    cut = w.abs().flatten().kthvalue(k).values
                    w[w.abs() <= cut] = 0
    return model.eval()


def _export(model: nn.Module, path: Path) -> Path:
    torch.manual_seed(1)
    return LiteRtBackend().export(model, torch.randn(*SHAPE), path, TARGET).path


def _ops(path: Path) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = fbu.read_model(str(path))
    return [names[fbu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])]
            for op in model.subgraphs[0].operators]


@pytest.fixture(scope="module")
def qualifying(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(_pruned(MiniMobile(), 0.8), tmp_path_factory.mktemp("sparse") / "mini80")


def test_a_qualifying_model_gets_every_1x1_convolution_on_the_sparse_path(qualifying: Path) -> None:
    rules = check_sparse_rules(qualifying)
    convs = [layer for layer in rules.layers if layer.kind == "conv1x1"]
    assert rules.holds and len(convs) == 4
    assert all(layer.qualifies and layer.reason == QUALIFIES for layer in convs)
    assert all(abs(layer.sparsity - 0.8) < 0.02 for layer in convs)
    assert abs(rules.cluster_sparsity - 0.8) < 0.02
    others = [layer for layer in rules.layers if layer.kind != "conv1x1"]
    assert others and not any(layer.qualifies for layer in others)  # stem and depthwise stay dense
    assert "4/4 1x1 convolutions qualify" in rules.summary()


def test_litert_torch_same_padding_breaks_the_nchw_part_until_rewritten(qualifying: Path) -> None:
    as_exported = check_sparse_rules(qualifying, explicit_padding=False)
    assert not as_exported.holds
    assert any("SAME padding" in problem for problem in as_exported.graph_problems)
    assert check_sparse_rules(qualifying).same_padding_rewritten == 1  # the stride-1 depthwise


def test_the_sparse_file_stores_csr_behind_densify_and_agrees_with_the_dense_one(qualifying: Path,
                                                                                 tmp_path: Path) -> None:
    written = write_sparse_tflite(qualifying, tmp_path / "sparse.tflite")
    assert written.written and written.sparse_tensors == 4
    assert written.sparse_bytes < written.dense_bytes
    ops = _ops(written.path)
    assert ops.count("DENSIFY") == 4 and ops.count("PAD") == _ops(qualifying).count("PAD") + 1
    assert check_sparse_rules(written.path).holds  # the written file still meets the rules it was written for
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    dense = LiteRtSession(qualifying, 1).run({"x": x})[0]
    sparse = LiteRtSession(written.path, 1).run({"x": x})[0]
    assert np.abs(dense).max() > 1e-2  # a real signal, not a vanishing one
    np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-5)


def test_a_1x1_filter_with_no_weight_left_stays_dense_and_the_file_loads(tmp_path: Path) -> None:
    """Heavy global pruning can zero a whole 1x1 filter: its CSR values would be an empty buffer, which LiteRT
    does not take as a constant (DENSIFY failed to load); it stays dense, the others go sparse."""
    model = _pruned(MiniMobile(), 0.8)
    with torch.no_grad():
        model.block[4].weight.zero_()  # the block's last 1x1 convolution: nothing left
    dense_path = _export(model, tmp_path / "zeroed")
    written = write_sparse_tflite(dense_path, tmp_path / "sparse.tflite")
    assert written.written and written.sparse_tensors == 3
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    np.testing.assert_allclose(LiteRtSession(written.path, 1).run({"x": x})[0],
                               LiteRtSession(dense_path, 1).run({"x": x})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("model", "sparsity", "reason"), [
    (lambda: MiniMobile(), 0.5, "needs more than 66.7%"),
    (lambda: MiniMobile(stem_stride=1), 0.8, "no 3x3 stride-2 convolution on 3 channels"),
    (lambda: MiniMobile(head="flatten"), 0.8, "no global MEAN"),
    (lambda: MiniMobile(head="tensor-mean"), 0.8, "TRANSPOSE, which XNNPACK cannot run in NCHW"),
], ids=["too-few-zeros", "stride-1-stem", "no-global-mean", "transpose-before-mean"])
def test_a_model_that_breaks_the_rules_gets_no_sparse_file(model, sparsity: float, reason: str,
                                                            tmp_path: Path) -> None:
    dense = _export(_pruned(model(), sparsity), tmp_path / "dense")
    rules = check_sparse_rules(dense)
    assert not rules.holds
    assert any(reason in problem for problem in rules.graph_problems), rules.graph_problems
    assert all(layer.reason != QUALIFIES for layer in rules.layers)
    written = write_sparse_tflite(dense, tmp_path / "sparse.tflite")
    assert not written.written and written.path is None
    assert not (tmp_path / "sparse.tflite").exists()


def test_xnnpack_runs_sparse_kernels_on_arm_and_on_x86_only_without_avx() -> None:
    assert sparse_kernels_on_cpu("aarch64", []).enabled
    assert sparse_kernels_on_cpu("armv7l", []).enabled
    assert not sparse_kernels_on_cpu("x86_64", ["sse4_2", "avx", "avx2"]).enabled
    assert "AVX" in sparse_kernels_on_cpu("x86_64", ["avx"]).reason
    assert sparse_kernels_on_cpu("x86_64", ["sse4_2"]).enabled


def test_only_litert_fp32_on_a_cpu_with_the_kernels_can_gain_latency_from_zeros() -> None:
    assert sparse_inference_verdict(load_target("rpi4")).enabled
    for name in ("cpu", "cpu-openvino"):
        verdict = sparse_inference_verdict(load_target(name))
        assert not verdict.enabled and "reduces the model's size, not its latency" in verdict.reason
    assert not sparse_inference_verdict(load_target("cpu-tflite"), "x86_64", ["avx"]).enabled
    assert sparse_inference_verdict(load_target("cpu-tflite"), "aarch64", []).enabled
    int8 = dataclasses.replace(load_target("rpi4"), precision="int8")
    assert "floating-point only" in sparse_inference_verdict(int8).reason


def test_the_speedup_is_measured_in_pairs_with_an_interval(qualifying: Path, tmp_path: Path) -> None:
    from edgeprune.validate.sparse_speedup import measure_sparse_speedup

    written = write_sparse_tflite(qualifying, tmp_path / "sparse.tflite")
    spec = PairingSpec(rounds=4, max_rounds=4, extra_rounds=0, min_round_seconds=0.02, min_runs=3, warmup_runs=3)
    result = measure_sparse_speedup(qualifying, written.path, threads=1, spec=spec)
    assert result.rounds == 4 and result.low <= result.speedup <= result.high
    assert result.dense_ms > 0 and result.sparse_ms > 0
    assert result.cpu == sparse_kernels_on_cpu()
    assert result.to_dict()["paired"]["rounds"] == 4
    assert result.densify_delegated  # XNNPACK took every DENSIFY: its sparse hint is set


def test_the_dense_file_has_no_densify_to_delegate(qualifying: Path) -> None:
    from edgeprune.validate.sparse_speedup import sparse_weights_delegated

    assert sparse_weights_delegated(qualifying) is None


def test_an_int8_model_gets_no_sparse_path(qualifying: Path, tmp_path: Path) -> None:
    from edgeprune.runtimes.litert.int8 import quantize_tflite_int8

    int8 = tmp_path / "int8.tflite"
    quantize_tflite_int8(qualifying, int8, np.random.default_rng(0).standard_normal((4, *SHAPE[1:])).astype(np.float32))
    rules = check_sparse_rules(int8)
    assert not rules.holds
    assert any("floating-point only" in layer.reason for layer in rules.layers if layer.kind == "conv1x1")
    assert not write_sparse_tflite(int8, tmp_path / "sparse.tflite").written

"""The lookup model's calibration per kernel kind, and the residual adds its probes carry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgeprune.latency.calibration import calibration_kind, fit_calibration
from edgeprune.latency.layers import LayerSignature, extract_layers, residual_add_convs
from edgeprune.latency.probes import PROBE_INPUT, ProbeModule, probe_input_shape, probe_onnx
from edgeprune.latency.table import Calibration, LatencyTable, TableContext
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.prune.graph import ModelGraph

SIG = LayerSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), 8, 8, False)
ADD_SIG = LayerSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), 8, 8, False, residual_add=True)


def _samples(scales: dict[str, float], offset: float, count: int, seed: int = 0
             ) -> tuple[list[tuple[float, float]], list[dict[str, float]]]:
    rng = np.random.default_rng(seed)
    kind_sums = [{k: float(rng.uniform(0.2, 2.0)) for k in scales} for _ in range(count)]
    pairs = [(sum(s.values()), sum(scales[k] * v for k, v in s.items()) + offset) for s in kind_sums]
    return pairs, kind_sums


def test_each_kernel_kind_gets_its_own_scale_when_the_kinds_are_off_by_different_factors() -> None:
    truth = {"conv1x1": 0.7, "dwconv": 1.6}
    pairs, kind_sums = _samples(truth, 0.1, 10)
    fitted = fit_calibration(pairs, kind_sums)
    assert fitted.kind_scales == pytest.approx(truth, rel=0.05)
    held_out_pairs, held_out_sums = _samples(truth, 0.1, 5, seed=1)
    for (total, measured), sums in zip(held_out_pairs, held_out_sums):
        assert fitted.apply(total, sums) == pytest.approx(measured, rel=0.02)
        # the global line alone misses some of them by more
    errors = [abs(fitted.apply(t) - m) / m for t, m in held_out_pairs]
    assert max(errors) > 0.05


def test_kinds_that_share_one_factor_keep_the_global_fit() -> None:
    pairs, kind_sums = _samples({"conv": 0.9, "conv1x1": 0.9}, -0.05, 10)
    fitted = fit_calibration(pairs, kind_sums)
    assert fitted.scale == pytest.approx(0.9) and fitted.offset_ms == pytest.approx(-0.05, abs=1e-9)
    for (total, measured), sums in zip(pairs, kind_sums):
        assert fitted.apply(total, sums) == pytest.approx(measured, rel=1e-3)


def test_too_few_samples_for_per_kind_scales_fall_back_to_one_scale() -> None:
    pairs, kind_sums = _samples({"conv": 0.5, "dwconv": 2.0, "linear": 1.0}, 0.0, 5)
    fitted = fit_calibration(pairs, kind_sums)
    assert fitted.kind_scales == {}


def test_per_kind_calibration_round_trips_through_the_table(tmp_path: Path) -> None:
    table = LatencyTable(TableContext("onnxruntime", "1", "cpu", 1, "fp32", "m"), tmp_path / "t.json")
    table.calibrations["s"] = Calibration(0.9, 0.1, [(1.0, 1.0)], {"conv": 0.8, "dwconv": 1.5}, 0.05,
                                          [{"conv": 0.5, "dwconv": 0.5}])
    table.save()
    loaded = LatencyTable.load(tmp_path / "t.json").calibrations["s"]
    assert loaded == table.calibrations["s"]
    assert loaded.apply(1.0, {"conv": 0.5, "dwconv": 0.5}) == pytest.approx(0.8 * 0.5 + 1.5 * 0.5 + 0.05)


def test_kernel_kinds() -> None:
    assert calibration_kind(SIG) == "conv"
    assert calibration_kind(LayerSignature("conv", (1, 1), (1, 1), (0, 0), (1, 1), 8, 8, False)) == "conv1x1"
    assert calibration_kind(LayerSignature("dwconv", (3, 3), (1, 1), (1, 1), (1, 1), 8, 8, False)) == "dwconv"


def test_a_residual_add_is_part_of_the_signature_key_and_old_keys_still_read() -> None:
    assert ADD_SIG.key() == SIG.key() + "|add"
    assert LayerSignature.from_key(ADD_SIG.key()) == ADD_SIG
    assert LayerSignature.from_key(SIG.key()) == SIG and not SIG.residual_add


class _InvertedResidual(nn.Module):
    """x + project(expand(x)) as torchvision's MobileNetV2 writes it; ``skip_conv`` made x."""

    def __init__(self) -> None:
        super().__init__()
        self.skip_conv = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8))
        self.expand = nn.Conv2d(8, 16, 1)
        self.project = nn.Sequential(nn.Conv2d(16, 8, 1), nn.BatchNorm2d(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.skip_conv(x)
        return x + self.project(torch.relu(self.expand(x)))


def test_the_conv_of_the_residual_branch_is_found_not_the_one_that_made_the_skip() -> None:
    assert residual_add_convs(_InvertedResidual().eval(), torch.zeros(1, 3, 8, 8)) == {"project.0"}
    model = CifarResNet(20).eval()
    found = residual_add_convs(model, torch.zeros(1, 3, 32, 32))
    assert found == {f"layer{s}.{b}.conv2" for s in (1, 2, 3) for b in range(3)}
    layers = extract_layers(model, torch.zeros(1, 3, 32, 32), ModelGraph(model, torch.zeros(1, 3, 32, 32)).groups)
    assert {layer.name for layer in layers if layer.signature.residual_add} == found


def test_a_residual_probe_runs_in_onnx_runtime_and_matches_its_pytorch_form(tmp_path: Path) -> None:
    path = tmp_path / "probe.onnx"
    import onnx

    onnx.save(probe_onnx(ADD_SIG, 4, 6), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.full(probe_input_shape(ADD_SIG, 4), 0.5, dtype=np.float32)
    (out,) = session.run(None, {PROBE_INPUT: x})
    assert out.shape == (1, 6, 8, 8)
    with torch.no_grad():
        expected = ProbeModule(ADD_SIG, 4, 6)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    plain = tmp_path / "plain.onnx"
    onnx.save(probe_onnx(SIG, 4, 6), str(plain))
    (without_add,) = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"]).run(None, {PROBE_INPUT: x})
    assert not np.allclose(out, without_add)  # the add is really in the probe


def test_a_tiny_kind_cannot_pose_as_a_proxy_for_the_whole_model() -> None:
    # the classifier's linear layer is 0.1% of the sum but its width follows the model's: it must not get a
    # scale of its own (fitted, it would stand in for everything else)
    rng = np.random.default_rng(3)
    kind_sums, pairs = [], []
    for _ in range(12):
        width, other = rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)
        sums = {"conv": 2.0 * width, "linear": 0.002 * width, "dwconv": 0.5 * other}
        kind_sums.append(sums)
        pairs.append((sum(sums.values()), 0.9 * sums["conv"] + 1.4 * sums["dwconv"] + 0.1 + rng.normal(0, 0.01)))
    fitted = fit_calibration(pairs, kind_sums)
    assert fitted.kind_scales["dwconv"] == pytest.approx(1.4, rel=0.1)  # the kinds that matter got their own
    assert fitted.kind_scales["linear"] == fitted.kind_scales["conv"]  # the tiny one rides with the largest
    assert fitted.kind_scales["conv"] == pytest.approx(0.9, rel=0.1)

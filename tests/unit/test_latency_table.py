"""Latency tables and the lookup predictor: round trip, reuse by signature, interpolation, alignment steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from edgeprune.errors import InputError
from edgeprune.latency.calibration import fit_calibration
from edgeprune.latency.grid import interpolate_2d, width_grid
from edgeprune.latency.layers import LayerSignature, extract_layers
from edgeprune.latency.predictor import LookupLatencyModel
from edgeprune.latency.probes import EMPTY_PROBE_KEY
from edgeprune.latency.profiler import layer_grids, missing_probes, sample_widths
from edgeprune.latency.table import Calibration, LatencyTable, TableContext
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.prune.graph import ModelGraph

CONTEXT = TableContext("onnxruntime", "1.0", "cpu", 1, "fp32", "test machine")
SIG = LayerSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), 16, 16, False)


def test_signature_key_round_trips() -> None:
    assert LayerSignature.from_key(SIG.key()) == SIG
    grouped = LayerSignature("conv", (1, 1), (2, 2), (0, 0), (1, 1), 7, 9, True, groups=4)
    assert LayerSignature.from_key(grouped.key()) == grouped


def test_table_round_trips_through_json(tmp_path: Path) -> None:
    table = LatencyTable(CONTEXT, tmp_path / "t.json")
    table.put(SIG, 8, 16, 0.125)
    table.calibrations["m"] = Calibration(0.9, -0.05, [(1.0, 0.85), (2.0, 1.75)])
    table.save()
    loaded = LatencyTable.load(tmp_path / "t.json")
    assert loaded.context == CONTEXT
    assert loaded.get(SIG, 8, 16) == 0.125 and loaded.get(SIG, 16, 8) is None
    assert loaded.calibrations["m"].apply(2.0) == pytest.approx(1.75)


def test_open_reuses_the_table_of_the_same_context_only(tmp_path: Path) -> None:
    table = LatencyTable.open(CONTEXT, tmp_path)
    table.put(SIG, 8, 8, 0.1)
    table.save()
    assert LatencyTable.open(CONTEXT, tmp_path).get(SIG, 8, 8) == 0.1
    other = TableContext("onnxruntime", "1.0", "cpu", 2, "fp32", "test machine")  # 2 threads: another table
    assert LatencyTable.open(other, tmp_path).get(SIG, 8, 8) is None


def test_corrupt_table_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read latency table"):
        LatencyTable.load(tmp_path / "t.json")


def test_width_grid_contains_alignment_steps_and_both_ends() -> None:
    assert width_grid(8, 64, 8, 8) == [8, 16, 24, 32, 40, 48, 56, 64]
    coarse = width_grid(8, 96, 8, 5)
    assert coarse[0] == 8 and coarse[-1] == 96 and len(coarse) == 5
    assert all(w % 8 == 0 for w in coarse)
    assert width_grid(3, 3, 8, 6) == [3]


def test_bilinear_interpolation_is_exact_for_work_proportional_to_widths() -> None:
    xs, ys = [8, 16, 32], [8, 24, 64]

    def cost(i: float, o: float) -> float:
        return 0.002 * i * o + 0.01 * i + 0.03 * o + 0.5

    values = [[cost(i, o) for o in ys] for i in xs]
    for i, o in [(8, 8), (12, 20), (24, 40), (32, 64), (40, 72)]:  # includes extrapolation beyond the grid
        assert interpolate_2d(xs, ys, values, i, o) == pytest.approx(cost(i, o))


def test_shared_signatures_are_probed_once_and_reused_across_models() -> None:
    example = torch.zeros(1, 3, 32, 32)
    table = LatencyTable(CONTEXT)
    model20 = CifarResNet(20).eval()
    grids20 = layer_grids(extract_layers(model20, example, ModelGraph(model20, example).groups), 8, 6)
    todo = missing_probes(grids20, table)
    assert len(todo) == len(set(todo))
    for key, cin, cout in todo:
        table.put(key, cin, cout, 0.01 * cin * cout / 64 + 0.001)
    model32 = CifarResNet(32).eval()  # same layer shapes, more blocks: nothing new to measure
    grids32 = layer_grids(extract_layers(model32, example, ModelGraph(model32, example).groups), 8, 6)
    assert missing_probes(grids32, table) == []


def test_predictor_interpolates_respects_widths_and_breaks_down_per_layer() -> None:
    example = torch.zeros(1, 3, 32, 32)
    model = CifarResNet(20).eval()
    graph = ModelGraph(model, example)
    layers = extract_layers(model, example, graph.groups)
    grids = layer_grids(layers, 8, 6)
    table = LatencyTable(CONTEXT)

    def cost(key: str, cin: int, cout: int) -> float:
        sig = LayerSignature.from_key(key)
        return 1e-5 * cin * cout * sig.height * sig.width / 64 + 0.002

    todo = missing_probes(grids, table)
    assert todo[0] == (EMPTY_PROBE_KEY, 0, 0)  # the runtime's per-call cost is measured first
    table.put(EMPTY_PROBE_KEY, 0, 0, 0.002)
    for key, cin, cout in todo[1:]:
        table.put(key, cin, cout, cost(key, cin, cout))
    calibration = Calibration(1.1, -0.01)
    lookup = LookupLatencyModel(grids, table, calibration)
    full = {g.name: g.width for g in graph.prunable_groups()}
    # Each probe's per-call cost (the empty probe's 0.002 ms) is subtracted from its kernel time.
    exact_sum = sum(cost(l.signature.key(), *l.widths(full)) - 0.002 for l in layers)
    assert lookup.predict(full) == pytest.approx(calibration.apply(exact_sum))
    half = {name: max(8, w // 2) for name, w in full.items()}
    assert lookup.predict(half) < lookup.predict(full)
    assert sum(lookup.breakdown(half).values()) == pytest.approx(lookup.predict(half))
    # Alignment: every width the search can produce for a layer is a probed grid point.
    for grid in grids:
        for side in (grid.cins, grid.couts):
            assert all(w % 8 == 0 or w == 3 or w == 10 for w in side)


def test_predictor_refuses_a_table_without_the_needed_timings() -> None:
    example = torch.zeros(1, 3, 32, 32)
    model = CifarResNet(8).eval()
    grids = layer_grids(extract_layers(model, example, ModelGraph(model, example).groups), 8, 6)
    with pytest.raises(InputError, match="edgeprune profile"):
        LookupLatencyModel(grids, LatencyTable(CONTEXT))


def test_calibration_fit_recovers_a_linear_relation() -> None:
    pairs = [(x, 0.8 * x + 0.3) for x in (1.0, 2.0, 3.5, 5.0)]
    fitted = fit_calibration(pairs)
    assert fitted.scale == pytest.approx(0.8) and fitted.offset_ms == pytest.approx(0.3)


def test_calibration_samples_are_seeded_aligned_and_include_the_extremes() -> None:
    model = CifarResNet(20).eval()
    groups = ModelGraph(model, torch.zeros(1, 3, 32, 32)).prunable_groups()
    a = sample_widths(groups, 8, 6, seed=3)
    assert a == sample_widths(groups, 8, 6, seed=3)
    assert a[0] == {g.name: g.width for g in groups}
    assert a[1] == {g.name: 8 for g in groups}
    assert all(w % 8 == 0 for s in a for w in s.values())


class _MachineFacts:
    """Stands where a timer would, for its machine facts only (nothing is timed)."""

    source = "measured-local"

    def __init__(self, features: str) -> None:
        self.features = features

    def machine(self) -> dict[str, object]:
        return {"cpu": "AMD EPYC", "logical_cores": 2, "architecture": "x86_64", "cpu_features": self.features}

    def runtime_version(self) -> str:
        return "1.0"


def test_tables_of_cpus_with_one_name_but_other_features_are_kept_apart() -> None:
    from edgeprune.latency.profile_model import table_context
    from edgeprune.runtimes import get_backend
    from edgeprune.target import load_target

    target = load_target("cpu")
    backend = get_backend(target)
    a, b = (table_context(backend, target, _MachineFacts(f)) for f in ("avx2-digest", "amx-digest"))  # type: ignore[arg-type]
    assert a.key() != b.key()
    assert a.key() == table_context(backend, target, _MachineFacts("avx2-digest")).key()  # type: ignore[arg-type]


def test_opening_a_table_removes_the_temporary_file_a_killed_save_left(tmp_path: Path) -> None:
    path = LatencyTable.open(CONTEXT, tmp_path).path
    leftover = path.parent / f".{path.name}.k1ll3d.tmp"
    leftover.write_text('{"format": ')
    os.utime(leftover, (1.0, 1.0))
    LatencyTable.open(CONTEXT, tmp_path)
    assert not leftover.exists()

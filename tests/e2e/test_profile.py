"""`edgeprune profile` end to end on ONNX Runtime: predictions agree with measurements; an interrupted
profile keeps its finished probes and resumes."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from process_helpers import interruptible_popen

from edgeprune.latency.candidates import CandidateMeasurer
from edgeprune.latency.layers import extract_layers
from edgeprune.latency.profile_model import ProfileConfig, profile_model
from edgeprune.latency.profiler import sample_widths
from edgeprune.latency.table import LatencyTable
from edgeprune.models.zoo import build_architecture
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

# Stated tolerance: sub-millisecond models on a shared 2-core machine drift by up to ~8% between two
# measurements a minute apart (26% was seen once in CI), so the predictions are checked *relative to the
# unpruned model measured right beside each variant*: drift cancels, and what is left is the table's shape,
# which is what the search ranks candidates on (the closed loop corrects the absolute scale with its own
# measurements). Each variant/unpruned pair is measured three times, interleaved, and the median ratio is
# compared. Each predicted ratio must be within 25% and the median error within 12%; a miss gets one
# independent profile and check (see the test). The strict fidelity goal (95% within ±10%, absolute)
# is checked by tools/bench/latency_fidelity.py, not here.
PER_CONFIG_TOLERANCE = 0.25
MEDIAN_TOLERANCE = 0.12


def _prediction_errors(table_dir: Path) -> tuple[list[float], ProfileConfig, int]:
    """Profile cifar-resnet14 into ``table_dir`` and return each sampled variant's relative error of
    predicted against measured latency ratio (variant / unpruned), with the config and probes measured."""
    config = ProfileConfig(model="cifar-resnet14", target="cpu", table_dir=table_dir, calibration_samples=6)
    lookup, summary = profile_model(config)
    assert summary.probes_measured > 0 and summary.table_path.is_file()
    target = load_target("cpu")
    model = build_architecture("cifar-resnet14").model.eval()
    example = torch.full((1, 3, 32, 32), 0.5)
    groups = ModelGraph(model, example).prunable_groups()
    measurer = CandidateMeasurer(get_backend(target), target, example, table_dir)
    spec = TimingSpec(min_seconds=0.5)
    full_predicted = lookup.predict({g.name: g.width for g in groups})
    full_artifact = measurer.export(model, "full")
    errors = []
    for widths in sample_widths(groups, target.channel_alignment, 6, seed=99)[2:]:
        keep = {g.name: list(range(widths[g.name])) for g in groups if widths[g.name] < g.width}
        artifact = measurer.export(slim_copy(model, example, keep), "check")
        ratios = []
        for _ in range(3):  # interleaved pairs; the median ratio shrugs off one pair hit by a burst of load
            measured = measurer.time(artifact, spec).stats.median_ms
            full_measured = measurer.time(full_artifact, spec).stats.median_ms
            # a gross scale error (a unit slip, a table from another machine) is caught on the unpruned model
            assert 0.5 <= full_predicted / full_measured <= 2.0, (full_predicted, full_measured)
            ratios.append(measured / full_measured)
        predicted_ratio, measured_ratio = lookup.predict(widths) / full_predicted, float(np.median(ratios))
        errors.append(abs(predicted_ratio - measured_ratio) / measured_ratio)
    return errors, config, summary.probes_measured


def _within_tolerance(errors: list[float]) -> bool:
    return max(errors) <= PER_CONFIG_TOLERANCE and float(np.median(errors)) <= MEDIAN_TOLERANCE


@pytest.mark.full
def test_predictions_agree_with_measured_latency_of_pruned_variants(tmp_path: Path) -> None:
    errors, config, probes_measured = _prediction_errors(tmp_path / "first")
    if not _within_tolerance(errors):
        # The table is measured once, so a burst of load on this shared machine while it is built skews
        # every prediction alike (CI once saw 12-23% on all four variants; the same code gave <12% alone).
        # As the product's own two-of-three confirmation does, a miss gets one independent profile and
        # check; a table that is really wrong misses both.
        logging.getLogger(__name__).warning("prediction errors %s missed the tolerance; profiling again", errors)
        errors, config, probes_measured = _prediction_errors(tmp_path / "second")
    assert max(errors) <= PER_CONFIG_TOLERANCE, errors
    assert float(np.median(errors)) <= MEDIAN_TOLERANCE, errors
    # A second profile of the same model reuses every probe and the calibration.
    _, again = profile_model(config)
    assert again.probes_measured == 0 and again.probes_reused == probes_measured


@pytest.mark.full
def test_interrupted_profile_keeps_finished_probes_and_resumes(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "edgeprune", "profile", "--model", "cifar-resnet20", "--target", "cpu",
           "--table-dir", str(tmp_path), "--calibration-samples", "3"]
    proc = interruptible_popen(cmd)
    deadline = time.time() + 120
    tables: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        tables = list(tmp_path.glob("*.json"))
        if tables and len(json.loads(tables[0].read_text())["entries"]) >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    done_before = sum(len(v) for v in json.loads(tables[0].read_text())["entries"].values())
    assert done_before >= 1
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert f"reused {done_before}" in finished.stdout


def test_profile_builds_a_table_and_a_second_run_reuses_every_probe(tmp_path: Path) -> None:
    """The quick tier's `edgeprune profile`: the smallest CIFAR ResNet, the fewest calibration samples, twice."""
    cmd = [sys.executable, "-m", "edgeprune", "profile", "--model", "cifar-resnet8", "--target", "cpu",
           "--table-dir", str(tmp_path), "--calibration-samples", "2"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    tables = list(tmp_path.glob("*.json"))
    assert len(tables) == 1
    probes = sum(len(v) for v in json.loads(tables[0].read_text())["entries"].values())
    assert probes > 0
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"reused {probes}" in again.stdout, again.stdout


@pytest.mark.full
@pytest.mark.parametrize("target", ["cpu-openvino", "cpu"])
def test_profile_reads_layer_times_in_context_from_the_runtimes_profiler(tmp_path: Path, target: str) -> None:
    """OpenVINO and ONNX Runtime profile each calibration sample: every node of every sample matches its layer
    (module labels, a batch norm's path mapped to its conv), every conv signature gets its in-context line, and
    `edgeprune profile` says so."""
    cmd = [sys.executable, "-m", "edgeprune", "profile", "--model", "cifar-resnet8", "--target", target,
           "--table-dir", str(tmp_path), "--calibration-samples", "10", "--max-points", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    title = "OpenVINO" if target == "cpu-openvino" else "ONNX Runtime"
    assert f"{title} profiler on the calibration samples (held-out error" in run.stdout, run.stdout
    table = LatencyTable.load(next(tmp_path.glob("*.json")))
    (calibration,) = table.calibrations.values()
    if not calibration.in_context:  # the probes alone predicted the held-out samples better: said, and kept
        assert "not used, the lone-kernel timings predict better" in run.stdout, run.stdout
        return
    model = build_architecture("cifar-resnet8").model.eval()
    example = torch.full((1, 3, 32, 32), 0.5)
    graph = ModelGraph(model, example)
    moving = {l.signature.key() for l in extract_layers(model, example, graph.groups)
              if l.signature.kind != "linear" and (l.in_groups or l.out_groups)}
    assert moving <= set(calibration.in_context), moving - set(calibration.in_context)

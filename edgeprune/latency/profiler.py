"""Build a model's latency table: time single-kernel probes across width grids, then calibrate on whole
sub-networks measured end to end.

The probes cover every width a search can produce for each layer (the alignment steps, or an even
subset of them when there are too many). Probes already in the table, from this or another model with
the same layer shapes in the same context, are not measured again.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from edgeprune.latency.calibration import fit_calibration
from edgeprune.latency.grid import width_grid
from edgeprune.latency.layers import Layer
from edgeprune.latency.predictor import LayerGrid, LookupLatencyModel
from edgeprune.latency.probes import (
    EMPTY_PROBE_KEY,
    PROBE_INPUT,
    EmptyProbeModule,
    ProbeModule,
    empty_probe_onnx,
    probe_input_shape,
    probe_onnx,
)
from edgeprune.latency.spread import spread, workers_of
from edgeprune.latency.table import Calibration, LatencyTable
from edgeprune.latency.timers import ArtifactTimer
from edgeprune.prune.groups import ChannelGroup
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.runtimes.onnx_export import ONNX_FORMAT
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec

log = logging.getLogger(__name__)

PROBE_TIMING = TimingSpec(warmup_runs=5, min_runs=30, min_seconds=0.15, max_cv=0.25, retries=1, warn_noisy=False)
ProgressFn = Callable[[int, int, str], None]


def min_width(width: int, alignment: int) -> int:
    """The smallest width a group may be pruned to."""
    return min(width, max(1, alignment))


def layer_grids(layers: Sequence[Layer], alignment: int, max_points: int) -> list[LayerGrid]:
    """For each layer, the widths to probe on each side (in whole groups for a grouped conv cut in groups)."""

    def side(total: int, parts: tuple[tuple[str, int], ...], step: int) -> tuple[int, ...]:
        if not parts:
            return (total,)
        fixed = total - sum(w for _, w in parts)
        lowest = fixed + sum(min_width(w, step) for _, w in parts)
        return tuple(width_grid(lowest, total, step, max_points))

    grids = []
    for layer in layers:
        sig = layer.signature
        step = math.lcm(max(1, alignment), sig.groups) if sig.kind == "gconv" else alignment
        cins = side(layer.in_channels, layer.in_groups, step)
        couts = side(layer.out_channels, layer.out_groups, step)
        if sig.diagonal:
            cins = couts = couts if layer.out_groups else cins
        grids.append(LayerGrid(layer, cins, couts))
    return grids


#: the most kernel timings one model's table asks for: a model with many distinct kernels (EfficientNet V2-S has
#: 171 layers, 1462 probes at 8 widths a side) gets fewer widths per side instead of an hour of profiling
MAX_PROBES = 600
#: the fewest widths per side a bounded grid keeps (the two ends and one between)
MIN_POINTS = 3


def distinct_probes(grids: Sequence[LayerGrid]) -> int:
    """How many distinct kernel timings ``grids`` need."""
    return len({(g.layer.signature.key(), *probe) for g in grids for probe in g.probes()})


def bounded_grids(layers: Sequence[Layer], alignment: int, max_points: int,
                  max_probes: int = MAX_PROBES) -> list[LayerGrid]:
    """:func:`layer_grids` with the most widths per side (at most ``max_points``, at least :data:`MIN_POINTS`)
    whose distinct probes stay within ``max_probes``."""
    points = max_points
    grids = layer_grids(layers, alignment, points)
    while points > MIN_POINTS and distinct_probes(grids) > max_probes:
        points -= 1
        grids = layer_grids(layers, alignment, points)
    if points < max_points:
        log.info("latency table: %d widths per layer side instead of %d, so that the %d kernels need at most %d "
                 "timings (%d)", points, max_points, len(layers), max_probes, distinct_probes(grids))
    return grids


def missing_probes(grids: Sequence[LayerGrid], table: LatencyTable) -> list[tuple[str, int, int]]:
    """Distinct (signature key, cin, cout) not yet in the table, in a stable order."""
    seen: set[tuple[str, int, int]] = set()
    todo = [] if table.get(EMPTY_PROBE_KEY, 0, 0) is not None else [(EMPTY_PROBE_KEY, 0, 0)]
    for grid in grids:
        key = grid.layer.signature.key()
        for cin, cout in grid.probes():
            item = (key, cin, cout)
            if item not in seen and table.get(key, cin, cout) is None:
                seen.add(item)
                todo.append(item)
    return todo


def _probe_artifact(backend: Backend, target: Target, key: str, cin: int, cout: int, work: Path) -> Artifact:
    from edgeprune.latency.layers import LayerSignature

    name = f"probe-{abs(hash((key, cin, cout))):x}"
    if key == EMPTY_PROBE_KEY:
        shape: tuple[int, ...] = (1, 1)
        proto, module = empty_probe_onnx, EmptyProbeModule
    else:
        sig = LayerSignature.from_key(key)
        shape = probe_input_shape(sig, cin)
        proto, module = (lambda: probe_onnx(sig, cin, cout)), (lambda: ProbeModule(sig, cin, cout))
    if backend.facts.reads_onnx:  # write the probe directly as ONNX (fast)
        path = work / f"{name}.onnx"
        onnx.save(proto(), str(path))
        probe = Artifact(path, ONNX_FORMAT, PROBE_INPUT, shape)
        if target.precision == "int8" and key != EMPTY_PROBE_KEY:  # the empty probe times the call itself
            from edgeprune.quantize.probes import quantize_probe

            return quantize_probe(probe, getattr(backend, "inner", backend))
        return probe
    import torch

    if target.precision == "int8" and key != EMPTY_PROBE_KEY:  # LiteRT: converted, then quantized fully integer
        from edgeprune.quantize.probes import int8_probe_backend

        backend = int8_probe_backend(backend, shape)
    elif key == EMPTY_PROBE_KEY:  # times the call itself, in float: never the run's INT8 backend, whose
        backend = getattr(backend, "inner", backend)  # calibration images do not fit the probe's (1, 1) input

    return backend.export(module().eval(), torch.zeros(shape), work / name, target)


def measure_probes(
    todo: Sequence[tuple[str, int, int]],
    backend: Backend,
    target: Target,
    table: LatencyTable,
    work: Path,
    timer: ArtifactTimer,
    progress: ProgressFn | None = None,
    spec: TimingSpec = PROBE_TIMING,
) -> int:
    """Time each probe and save the table after every one (so an interruption loses at most one).

    A pool of devices times several probes at once (:func:`~edgeprune.latency.spread.spread`), and the table
    records which device timed each.
    """
    noisy = done = 0
    time_where = getattr(timer, "time_where", None)

    def prepare(item: tuple[str, int, int]) -> Artifact:
        return _probe_artifact(backend, target, *item, work)

    def measure(artifact: Artifact) -> tuple[LatencyStats, str | None]:
        return time_where(artifact, spec) if time_where is not None else (timer.time(artifact, spec), None)

    def finish(index: int, item: tuple[str, int, int], artifact: Artifact,
               result: tuple[LatencyStats, str | None]) -> None:
        nonlocal noisy, done
        (key, cin, cout), (stats, device) = item, result
        noisy += int(stats.noisy)
        table.put(key, cin, cout, stats.median_ms, device)
        table.save()
        for leftover in artifact.path.parent.glob(artifact.path.stem + "*"):
            leftover.unlink(missing_ok=True)
        done += 1
        if progress:
            progress(done, len(todo), key.split("|")[0])

    spread(todo, prepare, measure, finish, workers_of(timer))
    if noisy:
        log.warning("%d of %d kernel timings stayed noisy (CV above %.0f%%); their medians are used, but "
                    "another process using the CPU makes the table less accurate", noisy, len(todo), 100 * spec.max_cv)
    return len(todo)


def sample_widths(groups: Sequence[ChannelGroup], alignment: int, count: int, seed: int) -> list[dict[str, int]]:
    """Calibration candidates: the full model, the smallest one, and random aligned widths per group."""
    rng = random.Random(seed)
    full = {g.name: g.width for g in groups}
    smallest = {g.name: g.min_width(alignment) for g in groups}
    samples = [full, smallest]
    while len(samples) < count:
        mode = rng.random()
        candidate = {}
        for g in groups:
            lo = g.min_width(alignment)
            steps = list(range(lo, g.width + 1, g.step(alignment))) or [g.width]
            if g.width not in steps:
                steps.append(g.width)
            if mode < 0.5:  # uniform-ish ratio with jitter, like the searches produce
                ratio = rng.uniform(0.2, 1.0)
                target_width = ratio * g.width
                candidate[g.name] = min(steps, key=lambda s: abs(s - target_width))
            else:
                candidate[g.name] = rng.choice(steps)
        samples.append(candidate)
    return samples


def fit_measured(model: LookupLatencyModel, samples: Sequence[Mapping[str, int]], measured_ms: Sequence[float],
                 devices: Sequence[str | None] = (), in_context: Mapping[str, list[float]] | None = None,
                 in_context_source: str = "") -> Calibration:
    """The whole-model correction from samples measured end to end (``measured_ms``, in their order; ``devices``:
    the device that timed each, when measured through agents), fitted over kernel times that take ``in_context``
    lines (per signature key) where given."""
    kind_sums = [model.kind_sums(widths, in_context or {}) for widths in samples]
    calibration = fit_calibration([(sum(k.values()), ms) for k, ms in zip(kind_sums, measured_ms)], kind_sums)
    if any(devices):
        calibration.measured_by = [d or "" for d in devices]
    calibration.in_context, calibration.in_context_source = dict(in_context or {}), in_context_source
    return calibration


@dataclass
class ProfileSummary:
    """What a profile run did."""

    table_path: Path
    probes_measured: int
    probes_reused: int
    calibration: Calibration
    calibration_error_pct: float
    seconds: float
    #: measurements each device took (its agent's URL), probes and calibration alike; empty when timed here
    device_shares: dict[str, int] = field(default_factory=dict)

"""LookupLatencyModel: predicted latency of any candidate (one width per group) from a latency table.

Each kernel's time is interpolated bilinearly between the widths the profiler measured (the grid always
contains the alignment steps it could afford) or, where the calibration holds an in-context line for the kernel's
signature (read from the runtime's profiler on whole sub-networks: :mod:`edgeprune.latency.in_context`), taken
from that line; summed over the model, then corrected by the model's whole-model calibration (measured ≈ scale ×
Σ kernels + offset). A prediction is a few microseconds per
layer, well under a millisecond for a ResNet-56.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgeprune.errors import InputError
from edgeprune.latency import in_context
from edgeprune.latency.calibration import calibration_kind
from edgeprune.latency.grid import interpolate_2d
from edgeprune.latency.layers import Layer
from edgeprune.latency.probes import EMPTY_PROBE_KEY
from edgeprune.latency.table import Calibration, LatencyTable


class LatencyModel(Protocol):
    """Predicts a candidate's latency in milliseconds; called thousands of times by the search."""

    def predict(self, widths: Mapping[str, int]) -> float:
        """Predicted median latency (ms) of the candidate with these group widths."""
        ...

    def breakdown(self, widths: Mapping[str, int]) -> dict[str, float]:
        """Per-layer contributions (ms); they sum to :meth:`predict`."""
        ...


@dataclass(frozen=True)
class LayerGrid:
    """The widths at which one layer's kernel was (or will be) measured."""

    layer: Layer
    cins: tuple[int, ...]
    couts: tuple[int, ...]

    def probes(self) -> list[tuple[int, int]]:
        """(cin, cout) pairs to measure; depthwise kernels only need the diagonal."""
        if self.layer.signature.diagonal:
            return [(c, c) for c in self.couts]
        return [(i, o) for i in self.cins for o in self.couts]


def structure_key(layers: Sequence[Layer], input_shape: Sequence[int]) -> str:
    """Hash identifying a model structure (layers, shapes, groups): calibrations are stored under it."""
    payload = [list(input_shape)] + [
        [l.name, l.signature.key(), l.in_channels, l.out_channels, list(l.in_groups), list(l.out_groups)]
        for l in layers
    ]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


class LookupLatencyModel:
    """Table-driven latency model for one model structure on one measurement context."""

    def __init__(self, grids: Sequence[LayerGrid], table: LatencyTable, calibration: Calibration | None = None) -> None:
        self.calibration = calibration
        # Every probe also paid the runtime's fixed per-call cost; a model pays it once, not once per layer.
        call_ms = table.get(EMPTY_PROBE_KEY, 0, 0) or 0.0
        self._layers: list[tuple[Layer, tuple[int, ...], tuple[int, ...], list[list[float]]]] = []
        self._kinds = {grid.layer.name: calibration_kind(grid.layer.signature) for grid in grids}
        for grid in grids:
            sig = grid.layer.signature
            if sig.diagonal:
                xs: tuple[int, ...] = grid.couts
                ys: tuple[int, ...] = (0,)
                values = [[max(self._need(table, grid, c, c) - call_ms, 0.0)] for c in grid.couts]
            else:
                xs, ys = grid.cins, grid.couts
                values = [[max(self._need(table, grid, i, o) - call_ms, 0.0) for o in ys] for i in xs]
            self._layers.append((grid.layer, xs, ys, values))

    @staticmethod
    def _need(table: LatencyTable, grid: LayerGrid, cin: int, cout: int) -> float:
        value = table.get(grid.layer.signature, cin, cout)
        if value is None:
            raise InputError(
                f"latency table has no timing for {grid.layer.name} at {cin}->{cout} channels; run 'edgeprune profile'"
            )
        return value

    def kernel_times(self, widths: Mapping[str, int],
                     lines: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
        """Uncalibrated per-kernel times (ms) for a candidate, in-context where ``lines`` (per signature key; by
        default the calibration's) has a line."""
        times = {}
        if lines is None:
            lines = self.calibration.in_context if self.calibration is not None else {}
        for layer, xs, ys, values in self._layers:
            cin, cout = layer.widths(widths)
            line = lines.get(layer.signature.key()) if lines else None
            if line is not None:
                times[layer.name] = in_context.predict(line, layer, cin, cout)
            elif layer.signature.diagonal:
                times[layer.name] = interpolate_2d(xs, ys, values, cout, 0)
            else:
                times[layer.name] = interpolate_2d(xs, ys, values, cin, cout)
        return times

    def kernel_sum(self, widths: Mapping[str, int]) -> float:
        """Σ of uncalibrated kernel times (ms)."""
        return sum(self.kernel_times(widths).values())

    def kind_sums(self, widths: Mapping[str, int],
                  lines: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
        """Σ of uncalibrated kernel times (ms) per kernel kind (the calibration's split); ``lines``: as
        :meth:`kernel_times` takes them."""
        sums: dict[str, float] = {}
        for name, ms in self.kernel_times(widths, lines).items():
            kind = self._kinds[name]
            sums[kind] = sums.get(kind, 0.0) + ms
        return sums

    def predict(self, widths: Mapping[str, int]) -> float:
        """Calibrated whole-model latency (ms)."""
        if self.calibration is None:
            return self.kernel_sum(widths)
        sums = self.kind_sums(widths)
        return self.calibration.apply(sum(sums.values()), sums)

    def breakdown(self, widths: Mapping[str, int]) -> dict[str, float]:
        """Per-layer ms scaled by the calibration, plus ``"(rest of the model)"`` for its offset."""
        times = self.kernel_times(widths)
        c = self.calibration
        if c is None:
            return times
        if c.kind_scales:
            scaled = {k: v * c.kind_scales.get(self._kinds[k], c.scale) for k, v in times.items()}
            scaled["(rest of the model)"] = c.kind_offset_ms
        else:
            scaled = {k: v * c.scale for k, v in times.items()}
            scaled["(rest of the model)"] = c.offset_ms
        return scaled

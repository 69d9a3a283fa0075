"""Latency tables: measured single-kernel timings keyed by runtime context, layer signature and widths.

A table file belongs to one measurement context (runtime and version, device, threads, precision, machine),
so timings are reused by any model with the same layer shapes measured in the same context, and never
mixed across contexts. Entries are written atomically after every probe: an interrupted ``profile`` keeps
what it finished and resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError, OutputError
from edgeprune.io_atomic import remove_stale_temps, write_json_atomic
from edgeprune.latency.layers import LayerSignature

log = logging.getLogger(__name__)

TABLE_FORMAT = "edgeprune-latency-table"
TABLE_VERSION = 1


@dataclass(frozen=True)
class TableContext:
    """Where and how a table's timings were measured."""

    runtime: str
    runtime_version: str
    device: str
    threads: int
    precision: str
    machine: str

    def key(self) -> str:
        """Short stable hash of the context (used in file names)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Calibration:
    """Whole-model correction for one model structure: measured ≈ ``scale`` × Σ kernels + ``offset_ms``,
    or, where the fit found it better, Σ over kernel kinds of ``kind_scales[kind]`` × Σ kernels of that
    kind + ``kind_offset_ms`` (see :mod:`edgeprune.latency.calibration`).

    ``samples`` keeps the (sum of kernel timings, measured ms) pairs it was fitted on, ``kind_sums`` the
    same sums split by kernel kind; ``measured_by`` the device (its agent's URL) that timed each sample, when
    they were timed through agents. ``in_context`` holds, per kernel signature key, the line of its in-context
    time that the runtime's profiler gave on the samples (:mod:`edgeprune.latency.in_context`), used instead of
    the probe timings of that signature; ``in_context_source`` says where it came from and how it compared with the
    probes alone (set also when the probes won and ``in_context`` is empty).
    """

    scale: float
    offset_ms: float
    samples: list[tuple[float, float]] = field(default_factory=list)
    kind_scales: dict[str, float] = field(default_factory=dict)
    kind_offset_ms: float = 0.0
    kind_sums: list[dict[str, float]] = field(default_factory=list)
    measured_by: list[str] = field(default_factory=list)
    in_context: dict[str, list[float]] = field(default_factory=dict)
    in_context_source: str = ""

    def apply(self, kernel_sum_ms: float, kind_sums: Mapping[str, float] | None = None) -> float:
        """Calibrated whole-model latency (never below 1% of the kernel sum); per kind when both the
        calibration and the caller have the split."""
        if self.kind_scales and kind_sums is not None:
            value = sum(self.kind_scales.get(k, self.scale) * v for k, v in kind_sums.items()) + self.kind_offset_ms
        else:
            value = self.scale * kernel_sum_ms + self.offset_ms
        return max(value, 0.01 * kernel_sum_ms)


@dataclass
class LatencyTable:
    """Kernel timings (ms) per signature key and ``"cin,cout"``; calibrations per model structure.

    ``measured_by`` names, for timings taken through agents, the device (its agent's URL) that took each one,
    keyed like ``entries``.
    """

    context: TableContext
    path: Path | None = None
    entries: dict[str, dict[str, float]] = field(default_factory=dict)
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    measured_by: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, sig: LayerSignature | str, cin: int, cout: int) -> float | None:
        """The measured time of a kernel, or None."""
        key = sig if isinstance(sig, str) else sig.key()
        return self.entries.get(key, {}).get(f"{cin},{cout}")

    def put(self, sig: LayerSignature | str, cin: int, cout: int, ms: float, device: str | None = None) -> None:
        """Record a kernel timing, and the device that took it when given (call :meth:`save` to persist)."""
        key = sig if isinstance(sig, str) else sig.key()
        self.entries.setdefault(key, {})[f"{cin},{cout}"] = float(ms)
        if device is not None:
            self.measured_by.setdefault(key, {})[f"{cin},{cout}"] = device
        elif f"{cin},{cout}" in self.measured_by.get(key, {}):
            del self.measured_by[key][f"{cin},{cout}"]

    def device_shares(self) -> dict[str, int]:
        """How many of the table's timings each device took (timings taken here are not counted)."""
        shares: dict[str, int] = {}
        for by_width in self.measured_by.values():
            for device in by_width.values():
                shares[device] = shares.get(device, 0) + 1
        return shares

    def points(self, sig: LayerSignature | str) -> dict[tuple[int, int], float]:
        """All measured (cin, cout) → ms of a signature."""
        key = sig if isinstance(sig, str) else sig.key()
        return {tuple(int(v) for v in k.split(",")): ms for k, ms in self.entries.get(key, {}).items()}  # type: ignore[misc]

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "context": asdict(self.context),
            "entries": self.entries,
            "calibrations": {k: asdict(c) for k, c in self.calibrations.items()},
            **({"measured_by": self.measured_by} if self.measured_by else {}),
        }

    def save(self, path: Path | None = None) -> Path:
        """Write the table atomically (to ``path`` or where it was loaded from)."""
        target = path or self.path
        if target is None:
            raise ValueError("no path to save the latency table to")
        self.path = Path(target)
        try:
            write_json_atomic(self.path, self.to_dict())
        except OSError as exc:
            raise OutputError(f"cannot write the latency table {self.path}: {exc.strerror or exc}; make its folder "
                              "(--table-dir) writable or choose another") from None
        return self.path

    @classmethod
    def load(cls, path: Path) -> "LatencyTable":
        """Read a table written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("format") != TABLE_FORMAT or data.get("version") != TABLE_VERSION:
                raise InputError(f"{path} is not an edgeprune latency table (version {TABLE_VERSION})")
            table = cls(TableContext(**data["context"]), Path(path))
            table.entries = {k: {kk: float(vv) for kk, vv in v.items()} for k, v in data["entries"].items()}
            table.calibrations = {
                k: Calibration(c["scale"], c["offset_ms"], [tuple(s) for s in c.get("samples", [])],  # type: ignore[misc]
                               {kk: float(v) for kk, v in c.get("kind_scales", {}).items()},
                               float(c.get("kind_offset_ms", 0.0)), list(c.get("kind_sums", [])),
                               [str(d) for d in c.get("measured_by", [])],
                               {kk: [float(x) for x in v] for kk, v in c.get("in_context", {}).items()},
                               str(c.get("in_context_source", "")))
                for k, c in data.get("calibrations", {}).items()
            }
            table.measured_by = {k: {kk: str(vv) for kk, vv in v.items()} for k, v in data.get("measured_by", {}).items()}
            return table
        except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"cannot read latency table {path}: {exc}") from None

    @classmethod
    def open(cls, context: TableContext, directory: Path) -> "LatencyTable":
        """The table for ``context`` in ``directory``, loaded if it exists, else empty."""
        path = Path(directory) / f"{context.runtime}-{context.key()}.json"
        for stale in remove_stale_temps(path):
            log.info("removed %s, left by a run killed while saving the table", stale)
        if path.is_file():
            table = cls.load(path)
            if table.context != context:
                raise InputError(f"latency table {path} belongs to another context")
            log.info("reusing latency table %s (%d kernel timings)", path, len(table))
            return table
        return cls(context, path)

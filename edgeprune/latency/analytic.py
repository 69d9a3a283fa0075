"""AnalyticLatencyModel: predicted latency on devices edgeprune cannot reach, from a shipped profile.

Per kernel: time = max(compute, memory) + per-op overhead, where compute = 2·MACs / (peak × efficiency of
the kernel kind) with channels padded up to the device's SIMD/tile width, and memory = bytes moved
(input and output activations plus weights) / bandwidth. The model total adds a fixed per-inference
overhead. The constants live in ``edgeprune/profiles/<device>.toml`` with the public measurements they
were calibrated to and the error to expect. Every latency from here is a prediction and is labelled so.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from edgeprune.errors import InputError
from edgeprune.latency.layers import Layer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PREDICTED_LABEL = "predicted (shipped profile)"
AGENT_HINT = "connect an agent on the device (edgeprune agent; --device URL) to measure it"


@dataclass(frozen=True)
class DeviceProfile:
    """Constants of the analytic model for one device/runtime/threads/precision."""

    name: str
    description: str
    runtime: str
    threads: int
    precision: str
    peak_gflops: float
    memory_gbps: float
    bytes_per_element: int
    channel_alignment: int
    op_overhead_us: float
    model_overhead_us: float
    efficiency: dict[str, float]
    expected_error: str
    provenance: str
    calibration: list[dict[str, Any]] = field(default_factory=list)
    #: INT8 estimate, where the profile has one: ``compute_speedup`` over fp32 kernels (from public INT8/fp32
    #: ratios on the device), ``bytes_per_element`` (1), ``op_overhead_us``, ``expected_error``, ``provenance``
    int8: dict[str, Any] | None = None

    def at_precision(self, precision: str) -> DeviceProfile:
        """This profile's constants for ``precision``: itself for its own, its INT8 estimate for ``int8``."""
        if precision == self.precision:
            return self
        if precision != "int8" or not self.int8:
            raise InputError(f"shipped profile '{self.name}' has no {precision} estimate; connect an agent on the "
                             "device (edgeprune agent; --device URL) to measure it")
        est = self.int8
        return dataclasses.replace(
            self, precision="int8", peak_gflops=self.peak_gflops * float(est["compute_speedup"]),
            bytes_per_element=int(est.get("bytes_per_element", 1)),
            op_overhead_us=float(est.get("op_overhead_us", self.op_overhead_us)),
            expected_error=str(est["expected_error"]), provenance=str(est["provenance"]), calibration=[], int8=None)


def load_profile(name: str) -> DeviceProfile:
    """A profile shipped in ``edgeprune/profiles``."""
    resource = resources.files("edgeprune").joinpath("profiles", f"{name}.toml")
    if not resource.is_file():
        raise InputError(f"no shipped latency profile named '{name}'")
    data = tomllib.loads(resource.read_text(encoding="utf-8"))
    return DeviceProfile(**data)


def _padded(channels: int, alignment: int) -> int:
    return int(math.ceil(channels / alignment) * alignment)


def kernel_ms(layer: Layer, cin: int, cout: int, profile: DeviceProfile) -> float:
    """Predicted time of one kernel at the given widths."""
    sig = layer.signature
    a = max(1, profile.channel_alignment)
    if sig.kind == "linear":
        macs = cin * cout
        kind = "linear"
        elements = cin + cout + cin * cout
    else:
        out_h = (sig.height + 2 * sig.padding[0] - sig.dilation[0] * (sig.kernel[0] - 1) - 1) // sig.stride[0] + 1
        out_w = (sig.width + 2 * sig.padding[1] - sig.dilation[1] * (sig.kernel[1] - 1) - 1) // sig.stride[1] + 1
        k = sig.kernel[0] * sig.kernel[1]
        if sig.kind == "dwconv":
            c = _padded(cout, a)
            macs = c * k * out_h * out_w
            kind = "dwconv"
            weights = c * k
        else:
            ci, co = _padded(cin, a), _padded(cout, a)
            per_group = ci // max(1, sig.conv_groups(cin))
            macs = co * per_group * k * out_h * out_w
            kind = "conv1x1" if k == 1 else "conv"
            weights = co * per_group * k
        elements = cin * sig.height * sig.width + cout * out_h * out_w + weights
    efficiency = profile.efficiency.get(kind, profile.efficiency.get("conv", 0.3))
    compute_s = 2.0 * macs / (profile.peak_gflops * 1e9 * efficiency)
    memory_s = elements * profile.bytes_per_element / (profile.memory_gbps * 1e9)
    return 1000.0 * max(compute_s, memory_s) + profile.op_overhead_us / 1000.0


class AnalyticLatencyModel:
    """Shipped-profile latency model with the same interface as the lookup model."""

    source = PREDICTED_LABEL

    def __init__(self, layers: Sequence[Layer], profile: DeviceProfile) -> None:
        self.layers = list(layers)
        self.profile = profile

    def breakdown(self, widths: Mapping[str, int]) -> dict[str, float]:
        """Per-layer predicted ms, plus the fixed per-inference overhead."""
        times = {layer.name: kernel_ms(layer, *layer.widths(widths), self.profile) for layer in self.layers}
        times["(per-inference overhead)"] = self.profile.model_overhead_us / 1000.0
        return times

    def predict(self, widths: Mapping[str, int]) -> float:
        """Predicted median latency (ms)."""
        return sum(self.breakdown(widths).values())

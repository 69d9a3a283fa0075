"""Rule 4 of XNNPACK's sparse path: whether a CPU has its channels-first (sparse) kernels on, and what zero
weights can do for a target's latency (the sentence every fit report prints about unstructured sparsity).

The other rules are the model file's (:mod:`edgeprune.runtimes.litert.sparsity`).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeprune.runtimes.table import facts_of
from edgeprune.target import Target


@dataclass(frozen=True)
class CpuVerdict:
    """Whether XNNPACK turns its channels-first (sparse) kernels on for a CPU, and why."""

    enabled: bool
    reason: str


def sparse_kernels_on_cpu(machine: str | None = None, cpu_flags: Iterable[str] | None = None) -> CpuVerdict:
    """Whether XNNPACK turns on its channels-first (sparse) fp32 kernels on a CPU of architecture ``machine``
    (``platform.machine()`` spelling) with feature ``cpu_flags`` (``/proc/cpuinfo``); both default to this
    machine's. Arm (a Raspberry Pi, a phone): yes. x86: only without AVX (XNNPACK's
    ``xnn_is_chw_compatible_config``: its sparse kernels on x86 are SSE-only and it expects AVX dense kernels to
    be faster)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64", "i386", "i686", "x86"):
        flags = set(cpu_flags) if cpu_flags is not None else _local_cpu_flags()
        if "avx" in flags:
            return CpuVerdict(False, "x86 CPU with AVX: XNNPACK keeps its channels-first (sparse) kernels off and "
                                     "runs the dense ones (xnn_is_chw_compatible_config); zero weights shrink "
                                     "the file, not the latency, on this CPU")
        return CpuVerdict(True, "x86 CPU without AVX: XNNPACK's SSE sparse kernels are on")
    if machine.startswith(("arm", "aarch64")):
        return CpuVerdict(True, f"{machine}: XNNPACK's NEON sparse kernels are on")
    return CpuVerdict(False, f"{machine}: no XNNPACK sparse kernels known for this architecture")


def sparse_inference_verdict(target: Target, machine: str | None = None,
                             cpu_flags: Iterable[str] | None = None) -> CpuVerdict:
    """Whether zero weights can make ``target`` faster at all, and the sentence a report prints about it.

    Only a LiteRT fp32 target runs XNNPACK's sparse path, and only on a CPU that has it on
    (:func:`sparse_kernels_on_cpu`): a target whose latency comes from a Raspberry Pi profile is Arm; a target
    measured on this machine is this machine's CPU unless ``machine`` / ``cpu_flags`` say otherwise (a device
    behind ``edgeprune agent``). Everywhere else the verdict says that unstructured sparsity reduces the file's
    size, not its latency, on that runtime.
    """
    facts = facts_of(target.runtime)
    runtime = f"{facts.title} ({facts.sparse})" if facts.sparse else facts.title
    plain = f"unstructured sparsity reduces the model's size, not its latency, on {runtime}"
    if not facts.sparse:
        return CpuVerdict(False, f"{plain}: the runtime has no sparse kernels for zero weights in dense layers")
    if target.precision != "fp32":
        return CpuVerdict(False, f"{plain} at {target.precision}: XNNPACK's sparse path is floating-point only")
    if machine is None and (target.profile or "").startswith("rpi"):
        machine = "aarch64"
    verdict = sparse_kernels_on_cpu(machine, cpu_flags)
    if verdict.enabled:
        return CpuVerdict(True, f"{runtime} on this CPU runs qualifying 1x1 convolutions sparse ({verdict.reason}); "
                                "the speed-up must be measured")
    return CpuVerdict(False, f"{plain} here: {verdict.reason}")


def _local_cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()

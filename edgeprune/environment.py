"""Facts about the machine and software a measurement was taken with."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
from functools import lru_cache
from typing import Any

_PACKAGES = (
    "edgeprune", "torch", "torchvision", "torch-pruning", "onnx", "onnxruntime", "openvino", "litert-torch",
    "ai-edge-litert", "numpy", "scikit-learn",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_features() -> str | None:
    """A short digest of the CPU's feature flags (x86 ``flags``, Arm ``Features``): two CPUs with one model
    name can differ in what decides kernel speed (AVX-512, VNNI, AMX), and a latency table must tell them apart."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip().lower() in ("flags", "features"):
                    flags = " ".join(sorted(value.split()))
                    return hashlib.sha256(flags.encode()).hexdigest()[:12]
    except OSError:
        pass
    return None


def _governor() -> str | None:
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


@lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """CPU model and feature digest, logical cores, clock governor (when readable), OS and Python."""
    return {
        "cpu": _cpu_model(),
        "cpu_features": _cpu_features(),
        "logical_cores": os.cpu_count(),
        "architecture": platform.machine(),
        "cpu_governor": _governor(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of the packages that influence results."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions

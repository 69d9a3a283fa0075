"""Facts about the machine and software a measurement was taken with."""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import os
import platform
from functools import lru_cache
from typing import Any

_PACKAGES = (
    "edgeprune", "torch", "torchvision", "torch-pruning", "onnx", "onnxruntime", "openvino", "litert-torch",
    "ai-edge-litert", "ai-edge-quantizer", "nncf", "ncnn", "pnnx", "executorch", "torchao", "numpy", "scikit-learn",
    "timm",
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


def _usable_cores() -> int | None:
    """The cores this process may run on (``taskset`` or a container limits them); None where not known."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else None


@lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """CPU model and feature digest, logical cores and those this process may use, clock governor (when
    readable), OS and Python."""
    return {
        "cpu": _cpu_model(),
        "cpu_features": _cpu_features(),
        "logical_cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
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


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _vcgencmd(*args: str) -> str | None:
    """``vcgencmd ARGS`` on a Raspberry Pi (None elsewhere, or when it fails or hangs)."""
    import shutil
    import subprocess

    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def device_state(sys_root: str = "/sys") -> dict[str, Any]:
    """What the device exposes about its speed right now: CPU clocks (kHz, per policy), temperatures (°C, per
    thermal zone) and, on a Raspberry Pi, ``vcgencmd``'s temperature and throttling flags. Keys whose source
    is absent (a VM, a container) are left out; recorded with measurements so a report can show a throttle.
    ``sys_root`` is where sysfs is mounted."""
    state: dict[str, Any] = {}
    clocks = {}
    for policy in sorted(glob.glob(os.path.join(sys_root, "devices/system/cpu/cpufreq/policy*"))):
        khz = _read_int(os.path.join(policy, "scaling_cur_freq"))
        if khz is not None:
            clocks[os.path.basename(policy)] = khz
    if clocks:
        state["cpu_khz"] = clocks
    temps = {}
    for zone in sorted(glob.glob(os.path.join(sys_root, "class/thermal/thermal_zone*"))):
        milli = _read_int(os.path.join(zone, "temp"))
        if milli is not None:
            temps[os.path.basename(zone)] = milli / 1000.0
    if temps:
        state["temperature_c"] = temps
    for key, args in (("vcgencmd_temp", ("measure_temp",)), ("vcgencmd_throttled", ("get_throttled",))):
        value = _vcgencmd(*args)
        if value is not None:
            state[key] = value
    return state

"""What the measurement worker may use: memory, CPU time, threads, and the environment it starts with.

A model file is data, but a runtime loading it can be made to allocate gigabytes (a 207-byte ONNX graph that
builds a huge constant) or spin many threads. The worker therefore runs under limits it sets on itself before
reading its first job (POSIX ``resource`` limits; where the platform has none they are skipped with a
warning):

* ``memory_bytes``: its address space (``RLIMIT_AS``); an allocation past it fails and the job is refused;
* ``cpu_s``: CPU seconds per job (``RLIMIT_CPU``, re-armed before each job): the kernel ends a worker past it
  (``SIGXCPU``) and the agent restarts it;
* ``max_threads``: the most intra-op threads a request may ask for (checked by the handler, 400 beyond);
* no core dumps.

It also starts with a clean environment (:func:`worker_environment`): only locale, paths and runtime settings
pass; the agent's token and anything else are dropped. ``edgeprune agent --help`` shows the defaults.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeprune.agent.protocol import TOKEN_ENV

log = logging.getLogger(__name__)

#: the environment variables that reach the worker: by name, or by prefix (runtime and threading settings)
_PASS_NAMES = {"PATH", "HOME", "LANG", "LANGUAGE", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "PYTHONPATH",
               "PYTHONHOME", "VIRTUAL_ENV", "SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "USER", "LOGNAME"}
_PASS_PREFIXES = ("LC_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "OV_", "OPENVINO_", "INTEL_", "ONEDNN_", "DNNL_",
                  "TBB_", "ORT_", "TF_", "XNNPACK_", "EDGEPRUNE_", "COVERAGE_")
#: never passed, whatever the prefix rules say
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY", re.IGNORECASE)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask or container limit where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def physical_memory_bytes() -> int | None:
    """This machine's memory, where the OS tells."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def default_memory_mb() -> int:
    """Three quarters of this machine's memory (at least 1 GiB), in MiB; 4096 where the memory is unknown."""
    total = physical_memory_bytes()
    return 4096 if total is None else max(1024, int(total * 0.75) >> 20)


def default_max_threads() -> int:
    """This machine's usable cores, at least 4 (a workstation's target of 4 threads still measures on 2 cores)."""
    return max(4, usable_cores())


@dataclass(frozen=True)
class WorkerLimits:
    """The worker's limits (0 = no limit), as in the module docstring."""

    memory_bytes: int
    cpu_s: float
    max_threads: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (passed to the worker on its command line)."""
        return asdict(self)

    def describe(self) -> str:
        """One phrase for logs and error messages."""
        memory = f"{self.memory_bytes >> 20} MiB memory" if self.memory_bytes else "no memory limit"
        cpu = f"{self.cpu_s:g} CPU s per job" if self.cpu_s else "no CPU time limit"
        return f"{memory}, {cpu}, at most {self.max_threads} threads"


def apply_in_worker(limits: dict[str, Any]) -> None:
    """Set the memory limit and no core dumps on this process (the worker, before its first job)."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits
        log.warning("this platform has no resource limits; the worker runs without a memory or CPU limit")
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    memory = int(limits.get("memory_bytes") or 0)
    if memory > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            memory = min(memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (memory, hard))


def arm_cpu_limit(cpu_s: float) -> None:
    """Allow this process ``cpu_s`` more CPU seconds from now (before each job); past them the kernel sends
    SIGXCPU, which ends the worker."""
    if not cpu_s:
        return
    try:
        import resource
    except ImportError:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + cpu_s) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def worker_environment(work_dir: Path, package_root: str, threads: int) -> dict[str, str]:
    """The worker's environment: the allowed part of this one, the package on ``PYTHONPATH``, temporary files in
    the agent's private folder, threading libraries capped at ``threads``; never the token."""
    env = {k: v for k, v in os.environ.items()
           if (k in _PASS_NAMES or k.startswith(_PASS_PREFIXES)) and not _SECRET.search(k) and k != TOKEN_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    for name in ("TMPDIR", "TEMP", "TMP"):
        env[name] = str(work_dir)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if not env.get(name, "").isdigit() or int(env[name]) > threads:
            env[name] = str(threads)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env

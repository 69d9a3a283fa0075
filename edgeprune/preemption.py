"""Which timed runs were disturbed: did a thread of this process wait for a CPU while the run was timed?

Pairing (:mod:`edgeprune.paired`) cancels slow drift, not time-slicing. With more runnable threads than cores,
a run is preempted with a probability that grows with its length, so the median of raw runs favours the
shorter model: on 2 cores at load 5-6, an INT8 ResNet-56 against its fp32 original read 0.094 from raw runs
and 0.44 from the undisturbed ones (issue 35). So every timed run is bracketed by a reading of how long this
process's threads have waited, runnable, for a CPU, and a run during which they waited is left out:

* on Linux, the second field of ``/proc/self/task/<tid>/schedstat`` (nanoseconds spent on a run queue),
  summed over every thread of the process, read with ``pread`` on descriptors kept open;
* elsewhere, involuntary context switches of the process (``getrusage``): coarser (a switch, not its
  length), but a run with one is a run that lost its CPU;
* where neither exists, nothing is known and every run counts (:attr:`WaitProbe.kind` is ``"none"``).

A run counts as disturbed when the wait during it exceeds :data:`MIN_WAIT_S` or :data:`MIN_WAIT_SHARE` of the
run, whichever is larger: a preemption costs a time slice (a millisecond or more), while a thread woken at a
run's start may wait a few microseconds on an otherwise idle core.

Multi-threaded runs (a Pi at 4 threads) are judged by the same sum: a run in which any one worker thread
waited is disturbed, because the run ends only when its slowest thread does, so that wait lengthens it as
much as a preemption of the calling thread would.
"""

from __future__ import annotations

import os
import sys

#: a run whose threads waited less than this for a CPU is undisturbed (a wake-up's few microseconds)
MIN_WAIT_S = 50e-6
#: ... or less than this share of the run
MIN_WAIT_SHARE = 0.05


class WaitProbe:
    """Reads how long this process's threads have waited for a CPU (or how often they were switched out)."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self.kind = "none"
        if sys.platform.startswith("linux") and os.path.isfile(f"/proc/self/task/{os.getpid()}/schedstat"):
            self.kind = "schedstat"
            self.refresh()
        else:
            try:
                import resource

                resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw  # noqa: B018 (present on this platform?)
                self.kind = "rusage"
            except (ImportError, AttributeError):
                self.kind = "none"

    def refresh(self) -> None:
        """Open the schedstat file of every current thread (call before a series of runs: a runtime may have
        started threads since the last series)."""
        if self.kind != "schedstat":
            return
        self.close()
        task_dir = f"/proc/{os.getpid()}/task"
        for tid in os.listdir(task_dir):
            try:
                self._fds.append(os.open(f"{task_dir}/{tid}/schedstat", os.O_RDONLY))
            except OSError:  # the thread ended meanwhile
                continue

    def read(self) -> float:
        """The current total: seconds waited on a run queue (``schedstat``), involuntary switches
        (``rusage``) or 0 (``none``)."""
        if self.kind == "schedstat":
            total = 0
            for fd in self._fds:
                try:
                    total += int(os.pread(fd, 128, 0).split()[1])
                except (OSError, IndexError, ValueError):  # an ended thread reads as nothing
                    continue
            return total * 1e-9
        if self.kind == "rusage":
            import resource

            return float(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw)
        return 0.0

    def disturbed(self, waited: float, run_s: float) -> bool:
        """Whether a run of ``run_s`` seconds, during which :meth:`read` grew by ``waited``, was disturbed."""
        if self.kind == "schedstat":
            return waited > max(MIN_WAIT_S, MIN_WAIT_SHARE * run_s)
        return waited > 0

    def close(self) -> None:
        """Close the descriptors this probe holds."""
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def __del__(self) -> None:
        self.close()

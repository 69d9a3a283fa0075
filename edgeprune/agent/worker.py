"""The agent's measurement worker process and the server-side handle on it.

Models are loaded and timed in a separate process, so that a runtime that crashes on a malformed model,
or hangs past the per-request timeout, is killed and restarted while the agent keeps serving.

Protocol (JSON lines): the worker writes ``{"ready": true, "runtimes": {...}}`` once started, then
answers each job read from stdin (one JSON object per line: ``{"op": "info"}`` or
``{"op": "measure", "request": ..., "path": ..., "max_timing_s": ...}``, with ``"archive"`` and
``"max_unpacked"`` for an OpenVINO IR zip that it unpacks to ``path`` first) with exactly one JSON
object per line on stdout: ``{"ok": true, ...}`` or ``{"ok": false, "status": <http>, "error": "..."}``.
Closing its stdin asks it to exit.

:func:`worker_main` is the worker's entry point; :class:`RuntimeWorker` starts it (with
``python -c "from edgeprune.agent.worker import worker_main; worker_main()" '<limits JSON>'``) under the
limits and in the clean environment of :mod:`edgeprune.agent.limits`, sends it jobs and kills it on timeout.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from edgeprune.agent.checks import Refused, check_upload, unpack_artifact_zip
from edgeprune.agent.limits import WorkerLimits, apply_in_worker, arm_cpu_limit, worker_environment
from edgeprune.agent.pairing import fit_pairing_to_budget, paired_to_wire, pairing_from_request
from edgeprune.agent.protocol import (
    MeasureRequest,
    ProtocolError,
    fit_timing_to_budget,
    latency_stats_to_dict,
    one_line,
    timing_spec_to_dict,
)
from edgeprune.environment import device_state
from edgeprune.errors import EdgepruneError, MissingRuntimeError
from edgeprune.paired import PairedStats, measure_paired
from edgeprune.runtimes import RUNTIME_FACTS, facts_of, keep_runtime_telemetry_off
from edgeprune.target import Target

log = logging.getLogger(__name__)

_WORKER_STARTUP_S = 180.0
_MAX_REPLY_BYTES = 1 << 20
#: what the worker process runs (``python -c``); it imports this module by its installed name
#: how often a wait for the worker's reply checks that it is still alive (s)
_DEATH_POLL_S = 0.25
_WORKER_CODE = "from edgeprune.agent.worker import worker_main; worker_main()"


# --------------------------------------------------------------------------------------------------
# In the worker process: loads and times models; spoken to with one JSON object per line on stdin/stdout
# --------------------------------------------------------------------------------------------------


def _runtime_report() -> dict[str, dict[str, Any]]:
    """Per runtime: installed here, version, whether this edgeprune has a backend for it, the pip extra."""
    import importlib.metadata

    from edgeprune.runtimes import get_backend

    report: dict[str, dict[str, Any]] = {}
    for facts in RUNTIME_FACTS:
        runtime = facts.name
        extra = facts.agent_extra or facts.extra
        target = Target(name="agent", description="agent", runtime=runtime)
        entry: dict[str, Any] = {"installed": target.runtime_installed(), "extra": extra,
                                 "version": None, "backend": False, "note": None}
        try:
            entry["version"] = importlib.metadata.version(facts.dist)
        except importlib.metadata.PackageNotFoundError:
            pass
        try:
            backend = get_backend(target)
            entry["backend"] = True
            if entry["installed"]:
                entry["version"] = backend.version()
        except Exception as exc:  # a missing/broken backend is reported, not fatal
            entry["note"] = one_line(str(exc), 200)
        if not entry["installed"]:
            entry["note"] = f"not installed; on the device run: pip install 'edgeprune[{extra}]'"
        report[runtime] = entry
    return report


def _worker_measure(job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from edgeprune.runtimes import get_backend
    from edgeprune.runtimes.base import Artifact

    request = MeasureRequest.from_dict(job["request"])
    path = Path(job["path"])
    if job.get("archive"):  # a several-file artifact's zip: unpacked here, under the worker's limits
        archive = Path(job["archive"])
        try:
            unpacked = unpack_artifact_zip(archive, path.parent, request.format, int(job["max_unpacked"]))
        finally:
            archive.unlink(missing_ok=True)
        if unpacked != path:
            raise Refused(500, "the upload was unpacked under an unexpected name")
    else:
        check_upload(path, request.format)
    target = Target(name="agent", description="measured through the edgeprune agent", runtime=request.runtime,
                    device=request.device, threads=request.threads, precision=request.precision)
    if not target.runtime_installed():
        facts = facts_of(request.runtime)
        raise MissingRuntimeError(facts.title, facts.agent_extra or facts.extra)
    backend = get_backend(target)
    started = time.monotonic()
    t0 = time.perf_counter()
    session = backend.load(Artifact(path, request.format, request.input_name, request.input_shape), target)
    load_s = time.perf_counter() - t0
    feed = {request.input_name: np.zeros(request.input_shape, dtype=request.input_dtype)}
    t0 = time.perf_counter()
    session.run(feed)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    session.run(feed)
    estimate_s = time.perf_counter() - t0
    spec = fit_timing_to_budget(request.timing, estimate_s, float(job["max_timing_s"]))
    before = device_state()
    paired = None
    if isinstance(job.get("reference"), dict):
        paired = _measure_pair(job, request, backend, target, session, feed, estimate_s)
        stats = paired.candidate
    else:
        stats = session.time(feed, spec)
    ended = time.monotonic()
    extra = {"paired": paired_to_wire(paired)} if paired is not None else {}
    return {"ok": True, "stats": latency_stats_to_dict(stats), "timing": timing_spec_to_dict(spec), **extra,
            "device_state": {"before": before, "after": device_state()},
            "runtime": backend.name, "runtime_version": backend.version(), "load_ms": load_s * 1e3,
            "first_run_ms": first_s * 1e3, "interval": [started, ended]}


#: the reference's loaded session, kept between jobs (one reference is paired with many candidates)
_REFERENCE_SESSION: dict[str, Any] = {}


def _measure_pair(job: dict[str, Any], request: MeasureRequest, backend: Any, target: Target, session: Any,
                  feed: dict[str, Any], estimate_s: float) -> PairedStats:
    """Time the upload against the kept reference in alternating rounds (the reference was checked and loaded
    when it was uploaded; the same runtime settings are required)."""
    import numpy as np

    from edgeprune.runtimes.base import Artifact

    ref_request = MeasureRequest.from_dict(job["reference"]["request"])
    if (ref_request.runtime, ref_request.device, ref_request.threads, ref_request.precision) != \
            (request.runtime, request.device, request.threads, request.precision):
        raise Refused(409, "the reference was kept for other runtime settings; upload it again with these")
    ref_path = str(job["reference"]["path"])
    if ref_path not in _REFERENCE_SESSION:
        _REFERENCE_SESSION.clear()
        _REFERENCE_SESSION[ref_path] = backend.load(
            Artifact(Path(ref_path), ref_request.format, ref_request.input_name, ref_request.input_shape), target)
    ref_session = _REFERENCE_SESSION[ref_path]
    ref_feed = {ref_request.input_name: np.zeros(ref_request.input_shape, dtype=ref_request.input_dtype)}
    t0 = time.perf_counter()
    ref_session.run(ref_feed)
    ref_s = time.perf_counter() - t0
    spec, threshold = pairing_from_request(request.pairing or {})
    spec = fit_pairing_to_budget(spec, max(ref_s, estimate_s), float(job["max_timing_s"]))
    return measure_paired(lambda: ref_session.run(ref_feed), lambda: session.run(feed), spec, threshold)


def _worker_handle(job: Any, limits: dict[str, Any]) -> dict[str, Any]:
    try:
        if not isinstance(job, dict):
            raise Refused(400, "malformed job")
        if job.get("op") == "info":
            return {"ok": True, "runtimes": _runtime_report()}
        arm_cpu_limit(float(limits.get("cpu_s") or 0))
        return _worker_measure(job)
    except Refused as exc:
        return {"ok": False, "status": exc.status, "error": one_line(exc.message)}
    except ProtocolError as exc:
        return {"ok": False, "status": 400, "error": one_line(str(exc))}
    except EdgepruneError as exc:
        return {"ok": False, "status": 422, "error": one_line(str(exc))}
    except MemoryError:
        return {"ok": False, "status": 422, "error": "the model needs more memory than the agent's worker may use "
                                                     f"({int(limits.get('memory_bytes') or 0) >> 20} MiB)"}
    except Exception as exc:  # runtime failures: one line for the client, details in the agent's log
        logging.getLogger(__name__).debug("worker job failed", exc_info=True)
        text = one_line(f"{type(exc).__name__}: {exc}", 300)
        if "allocat" in text.lower() and limits.get("memory_bytes"):
            text += f" (the agent's worker may use {int(limits['memory_bytes']) >> 20} MiB: --worker-memory-mb)"
        return {"ok": False, "status": 422, "error": text}
    finally:
        import gc

        gc.collect()


def worker_main() -> None:
    """Entry point of the worker process: JSON jobs on stdin, one JSON reply per line on stdout.

    Runtimes sometimes print to stdout; the protocol therefore uses a private duplicate of the original
    stdout descriptor and points descriptor 1 at stderr. Its limits (:class:`~edgeprune.agent.limits.WorkerLimits`
    as JSON) come as its first argument and are set before anything else.
    """
    limits = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    apply_in_worker(limits)
    keep_runtime_telemetry_off()  # before any runtime is imported: no fork, nothing sent from the device
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when the worker stops
    logging.basicConfig(level=logging.WARNING, format="agent worker: %(message)s")
    proto.write(json.dumps({"ready": True, "runtimes": _runtime_report()}) + "\n")
    proto.flush()
    for line in sys.stdin.buffer:
        try:
            job = json.loads(line)
        except ValueError:
            job = None
        proto.write(json.dumps(_worker_handle(job, limits)) + "\n")
        proto.flush()


# --------------------------------------------------------------------------------------------------
# In the server process: the handle on the worker
# --------------------------------------------------------------------------------------------------


class WorkerFailed(Exception):
    """The worker process crashed or exceeded its time; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RuntimeWorker:
    """Owns the worker process: starts it on demand, sends one job at a time, kills it on timeout."""

    def __init__(self, cwd: Path, limits: WorkerLimits | None = None,
                 startup_timeout_s: float = _WORKER_STARTUP_S) -> None:
        self._cwd = cwd
        self.limits = limits or WorkerLimits(memory_bytes=0, cpu_s=0, max_threads=1024)
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[bytes | None] = queue.Queue()
        self.runtimes: dict[str, dict[str, Any]] | None = None

    def _start(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding edgeprune/
        env = worker_environment(self._cwd, package_root, self.limits.max_threads)
        # a process group of its own: stopping the worker also ends anything a runtime forked from it
        self._proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE, json.dumps(self.limits.to_dict())],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=self._cwd, env=env,
                                      start_new_session=True)
        self._replies = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc.stdout, self._replies), daemon=True,
                         name="agent-worker-reader").start()
        reply = self._wait(self._startup_timeout_s, "starting the runtime worker")
        if not reply.get("ready"):
            self.stop()
            raise WorkerFailed(500, "the runtime worker did not start")
        self.runtimes = reply.get("runtimes")
        log.debug("runtime worker started (pid %d)", self._proc.pid)

    @staticmethod
    def _pump(stream: BinaryIO, replies: queue.Queue[bytes | None]) -> None:
        try:
            while line := stream.readline(_MAX_REPLY_BYTES):
                replies.put(line)
        except (OSError, ValueError):
            pass
        replies.put(None)

    def ensure_started(self) -> None:
        """Start the worker if it is not running (it is started lazily and after a crash)."""
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:  # it died (or was killed) on its own: end what it left in its group
                _kill_group(self._proc.pid)
            self._proc = None
            self._start()

    def call(self, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one job and wait for its reply; raises :class:`WorkerFailed` on crash or timeout."""
        self.ensure_started()
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(job).encode("utf-8") + b"\n")
            self._proc.stdin.flush()
        except OSError:
            pass  # the worker died; _wait reports how
        return self._wait(timeout_s, "measuring")

    def _next_reply(self, timeout_s: float) -> bytes | None:
        """The worker's next reply line; None once it has died, even while a process it forked still holds its
        reply pipe open (so no end of file comes). Raises :class:`queue.Empty` after ``timeout_s``."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        dead_since: float | None = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise queue.Empty
            try:
                return self._replies.get(timeout=min(_DEATH_POLL_S, deadline - now))
            except queue.Empty:
                pass
            if self._proc.poll() is not None:  # a last reply may still be in the pipe: read for a moment more
                dead_since = dead_since if dead_since is not None else time.monotonic()
                if time.monotonic() - dead_since >= _DEATH_POLL_S:
                    return None

    def _wait(self, timeout_s: float, doing: str) -> dict[str, Any]:
        assert self._proc is not None
        try:
            line = self._next_reply(timeout_s)
        except queue.Empty:
            self.stop()
            raise WorkerFailed(504, f"{doing} did not finish within {timeout_s:g} s; the agent stopped it "
                                    "(raise the agent's --timeout, or shorten the timing)") from None
        if line is None:
            code = self._proc.wait()
            _kill_group(self._proc.pid)
            self._proc = None
            how = f"exit code {code}"
            if code < 0:
                try:
                    how = f"killed by {signal.Signals(-code).name}"
                except ValueError:
                    how = f"killed by signal {-code}"
            if code == -getattr(signal, "SIGXCPU", -1000):
                raise WorkerFailed(422, f"{doing} used more than the agent's CPU time limit ({self.limits.cpu_s:g} "
                                        "CPU s per job; raise it with --worker-cpu); the agent restarted the worker")
            raise WorkerFailed(422, f"the runtime crashed while {doing} ({how}; the worker's limits: "
                                    f"{self.limits.describe()}); the agent restarted it")
        try:
            reply = json.loads(line)
        except ValueError:
            self.stop()
            raise WorkerFailed(500, "the runtime worker sent a malformed reply") from None
        if not isinstance(reply, dict):
            self.stop()
            raise WorkerFailed(500, "the runtime worker sent a malformed reply")
        return reply

    def stop(self) -> None:
        """Stop the worker (closing stdin asks it to exit; it is killed if it does not)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        _kill_group(proc.pid)


def _kill_group(pgid: int) -> None:
    """End whatever is left in the worker's process group (a child a runtime forked and left behind: seen as
    a single-threaded copy of the worker stuck on a lock after the worker was killed while starting)."""
    if not hasattr(os, "killpg"):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

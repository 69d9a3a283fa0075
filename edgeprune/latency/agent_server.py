"""The on-device measurement agent: an HTTP server that times model artifacts with the device's runtime.

Security model (the agent accepts files from the network, so it is built to refuse rather than trust):

* Every request needs ``Authorization: Bearer <token>``; tokens are compared in constant time.
* It binds to 127.0.0.1 unless told otherwise; there is no TLS (tunnel over SSH on untrusted networks).
* Bodies are capped (``max_bytes``), streamed to disk (never held whole in memory) and accepted only as
  model files, checked before any runtime sees them: ONNX (protobuf parse + ``onnx.checker``, no external
  data), TFLite (FlatBuffer identifier ``TFL3`` and a bounds-checked root table), OpenVINO IR (a zip of
  exactly ``model.xml`` + ``model.bin``; the XML is parsed with DOCTYPE/ENTITY declarations refused).
* Uploads are written only into the agent's private temporary directory, under names the agent
  chooses (``model.onnx`` ...), and deleted after each request. Nothing received is ever executed or
  unpickled; the wire format is JSON.
* Models are loaded and timed in a separate worker process (spoken to with JSON lines), so a runtime
  that crashes on a malformed model, or hangs past the per-request timeout, is killed and restarted
  while the agent keeps serving. Measurements are serialised by a lock: concurrent clients queue.
* Errors go back as ``{"error": "<one line>"}``; tracebacks never leave the agent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import mmap
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.parsers import expat

from edgeprune._version import __version__
from edgeprune.errors import EdgepruneError, InputError, MissingRuntimeError
from edgeprune.latency.agent_protocol import (
    AUTH_HEADER,
    DEFAULT_MAX_BYTES,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    INFO_PATH,
    IR_BIN,
    IR_XML,
    MAX_TIMING_S,
    MEASURE_PATH,
    PROTOCOL_VERSION,
    REQUEST_HEADER,
    MeasureRequest,
    ProtocolError,
    fit_timing_to_budget,
    latency_stats_to_dict,
    one_line,
    timing_spec_to_dict,
)
from edgeprune.report.environment import machine_info
from edgeprune.target import RUNTIME_MODULES, Target

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
#: after refusing an upload early, read (and discard) at most this much of it so the client sees the answer
_DRAIN_LIMIT = 8 << 20
_WORKER_STARTUP_S = 180.0
_MAX_REPLY_BYTES = 1 << 20
_UPLOAD_NAMES = {"onnx": "model.onnx", "tflite": "model.tflite", "openvino": "upload.zip"}
_DIST_NAMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai-edge-litert"}


class Refused(Exception):
    """A request the agent turns down: HTTP ``status`` and a one-line ``message`` for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------------
# Payload checks (run in the server process; pure Python, nothing is loaded into a runtime here)
# --------------------------------------------------------------------------------------------------


def check_tflite(path: Path) -> None:
    """Refuse (415) anything that is not structurally a TFLite FlatBuffer: identifier ``TFL3`` at bytes 4..8,
    root table and vtable in bounds, schema version 3, at least one subgraph."""
    size = path.stat().st_size
    if size < 24:
        raise Refused(415, f"not a TFLite model: {size} bytes is too short")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[4:8] != b"TFL3":
            raise Refused(415, "not a TFLite model: no 'TFL3' FlatBuffer identifier at bytes 4-8")

        def u16(at: int) -> int:
            if not 0 <= at <= size - 2:
                raise Refused(415, "not a valid TFLite model: offset out of bounds")
            return int(struct.unpack_from("<H", buf, at)[0])

        def u32(at: int) -> int:
            if not 0 <= at <= size - 4:
                raise Refused(415, "not a valid TFLite model: offset out of bounds")
            return int(struct.unpack_from("<I", buf, at)[0])

        root = u32(0)
        vtable = root - struct.unpack_from("<i", buf, root)[0] if 8 <= root <= size - 4 else -1
        vt_len, table_len = u16(vtable), u16(vtable + 2)
        if vt_len < 4 or vt_len % 2 or vtable + vt_len > size or root + table_len > size:
            raise Refused(415, "not a valid TFLite model: malformed root table")

        def field_at(index: int) -> int:
            slot = 4 + 2 * index
            offset = u16(vtable + slot) if slot + 2 <= vt_len else 0
            if offset >= max(table_len, 1):
                raise Refused(415, "not a valid TFLite model: field outside its table")
            return root + offset if offset else 0

        version_at = field_at(0)
        if not version_at or u32(version_at) != 3:
            raise Refused(415, "not a valid TFLite model: schema version is not 3")
        for index, name, required in ((2, "subgraphs", True), (4, "buffers", False)):
            at = field_at(index)
            if not at:
                if required:
                    raise Refused(415, f"not a valid TFLite model: no {name}")
                continue
            vector = at + u32(at)
            count = u32(vector)
            if vector + 4 + 4 * count > size or (required and count == 0):
                raise Refused(415, f"not a valid TFLite model: malformed {name} vector")


def unpack_openvino_zip(zip_path: Path, out_dir: Path, max_unpacked: int) -> Path:
    """Copy ``model.xml`` and ``model.bin`` out of an IR upload zip into ``out_dir``; return the xml path.

    The zip must hold exactly those two members (no directories, no other files, no path components),
    unencrypted, stored or deflated, at most ``max_unpacked`` bytes once unpacked. Names on disk are the
    agent's own; nothing is extracted by the name recorded in the zip.
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Refused(415, "not an OpenVINO IR upload: expected a zip holding model.xml and model.bin") from None
    with archive:
        infos = archive.infolist()
        names = sorted(i.filename for i in infos)
        if names != [IR_BIN, IR_XML]:
            shown = ", ".join(ascii(n) for n in names[:6]) + (" ..." if len(names) > 6 else "")
            raise Refused(415, f"an OpenVINO IR zip must hold exactly {IR_XML} and {IR_BIN} (no folders); "
                               f"found {shown or 'nothing'}")
        declared = 0
        for info in infos:
            if info.flag_bits & 0x1:
                raise Refused(415, "encrypted zip members are not accepted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Refused(415, "zip members must be stored or deflated")
            declared += info.file_size
        if declared > max_unpacked:
            raise Refused(413, f"the IR unpacks to {declared} bytes; the agent accepts at most {max_unpacked}")
        written = 0
        for info in infos:
            own_name = IR_XML if info.filename == IR_XML else IR_BIN  # never a name taken from the zip
            try:
                with archive.open(info) as src, open(out_dir / own_name, "xb") as dst:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_unpacked:
                            raise Refused(413, f"the IR unpacks to more than {max_unpacked} bytes")
                        dst.write(chunk)
            except Refused:
                raise
            except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError ...
                raise Refused(415, f"corrupt zip member {own_name}: {type(exc).__name__}") from None
    xml_path = out_dir / IR_XML
    check_ir_xml(xml_path)
    return xml_path


def check_ir_xml(path: Path) -> None:
    """Refuse (415) an IR xml that is not well formed, declares a DOCTYPE or entities, or is not an IR ``<net>``."""

    def refuse_doctype(*_: Any) -> None:
        raise Refused(415, "the IR xml declares a DOCTYPE; DOCTYPE and ENTITY declarations are refused")

    def refuse_entity(*_: Any) -> None:
        raise Refused(415, "the IR xml declares or references an entity; ENTITY declarations are refused")

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except expat.ExpatError as exc:
        raise Refused(415, f"the IR xml is not well-formed XML: {expat.ErrorString(exc.code)}") from None
    # the expat pass above refused DOCTYPE/ENTITY, so ElementTree's parse below cannot expand anything
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise Refused(415, f"the IR xml is not well-formed XML: {one_line(str(exc), 120)}") from None
    if root.tag != "net" or root.find("layers") is None:
        raise Refused(415, "not an OpenVINO IR: the xml's root is not <net> with <layers>")


# --------------------------------------------------------------------------------------------------
# Worker process: loads and times models; spoken to with one JSON object per line on stdin/stdout
# --------------------------------------------------------------------------------------------------


def _runtime_report() -> dict[str, dict[str, Any]]:
    """Per runtime: installed here, version, whether this edgeprune has a backend for it, the pip extra."""
    import importlib.metadata

    from edgeprune.backends import get_backend

    report: dict[str, dict[str, Any]] = {}
    for runtime, (_module, extra) in RUNTIME_MODULES.items():
        target = Target(name="agent", description="agent", runtime=runtime)
        entry: dict[str, Any] = {"installed": target.runtime_installed(), "extra": extra, "version": None,
                                 "backend": False, "note": None}
        try:
            entry["version"] = importlib.metadata.version(_DIST_NAMES[runtime])
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


def _check_onnx(path: Path) -> None:
    """Parse + ``onnx.checker``; refuse external data (it would make the runtime read other files)."""
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        raise Refused(415, "not an ONNX model: the payload does not parse as an ONNX protobuf") from None
    if _has_external_data(model.graph):
        raise Refused(415, "ONNX models with external data are not accepted; export with the weights embedded")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise Refused(415, f"not a valid ONNX model: {one_line(str(exc), 200)}") from None
    if not model.graph.node:
        raise Refused(415, "not a valid ONNX model: the graph has no nodes")


def _has_external_data(graph: Any) -> bool:
    tensors = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    for node in graph.node:
        for attr in node.attribute:
            tensors.extend([attr.t] if attr.HasField("t") else [])
            tensors.extend(attr.tensors)
            if attr.HasField("g") and _has_external_data(attr.g):
                return True
            if any(_has_external_data(g) for g in attr.graphs):
                return True
    return any(t.data_location == 1 or len(t.external_data) for t in tensors)  # 1 = TensorProto.EXTERNAL


def _worker_measure(job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from edgeprune.backends import get_backend
    from edgeprune.backends.base import Artifact

    request = MeasureRequest.from_dict(job["request"])
    path = Path(job["path"])
    if request.format == "onnx":
        _check_onnx(path)
    target = Target(name="agent", description="measured through the edgeprune agent", runtime=request.runtime,
                    device=request.device, threads=request.threads, precision=request.precision)
    if not target.runtime_installed():
        raise MissingRuntimeError(request.runtime, RUNTIME_MODULES[request.runtime][1])
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
    stats = session.time(feed, spec)
    ended = time.monotonic()
    return {"ok": True, "stats": latency_stats_to_dict(stats), "timing": timing_spec_to_dict(spec),
            "runtime": backend.name, "runtime_version": backend.version(), "load_ms": load_s * 1e3,
            "first_run_ms": first_s * 1e3, "interval": [started, ended]}


def _worker_handle(job: Any) -> dict[str, Any]:
    try:
        if not isinstance(job, dict):
            raise Refused(400, "malformed job")
        if job.get("op") == "info":
            return {"ok": True, "runtimes": _runtime_report()}
        return _worker_measure(job)
    except Refused as exc:
        return {"ok": False, "status": exc.status, "error": one_line(exc.message)}
    except ProtocolError as exc:
        return {"ok": False, "status": 400, "error": one_line(str(exc))}
    except EdgepruneError as exc:
        return {"ok": False, "status": 422, "error": one_line(str(exc))}
    except Exception as exc:  # runtime failures: one line for the client, details in the agent's log
        logging.getLogger(__name__).debug("worker job failed", exc_info=True)
        return {"ok": False, "status": 422, "error": one_line(f"{type(exc).__name__}: {exc}")}
    finally:
        import gc

        gc.collect()


def worker_main() -> None:
    """Entry point of the worker process: JSON jobs on stdin, one JSON reply per line on stdout.

    Runtimes sometimes print to stdout; the protocol therefore uses a private duplicate of the original
    stdout descriptor and points descriptor 1 at stderr.
    """
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
        proto.write(json.dumps(_worker_handle(job)) + "\n")
        proto.flush()


class WorkerFailed(Exception):
    """The worker process crashed or exceeded its time; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RuntimeWorker:
    """Owns the worker process: starts it on demand, sends one job at a time, kills it on timeout."""

    def __init__(self, cwd: Path, startup_timeout_s: float = _WORKER_STARTUP_S) -> None:
        self._cwd = cwd
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[bytes | None] = queue.Queue()
        self.runtimes: dict[str, dict[str, Any]] | None = None

    def _start(self) -> None:
        import edgeprune

        env = dict(os.environ)
        package_root = str(Path(edgeprune.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        code = "from edgeprune.latency.agent_server import worker_main; worker_main()"
        self._proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, cwd=self._cwd, env=env)
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

    def _wait(self, timeout_s: float, doing: str) -> dict[str, Any]:
        assert self._proc is not None
        try:
            line = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            self.stop()
            raise WorkerFailed(504, f"{doing} did not finish within {timeout_s:g} s; the agent stopped it "
                                    "(raise the agent's --timeout, or shorten the timing)") from None
        if line is None:
            code = self._proc.wait()
            self._proc = None
            how = f"exit code {code}"
            if code < 0:
                try:
                    how = f"killed by {signal.Signals(-code).name}"
                except ValueError:
                    how = f"killed by signal {-code}"
            raise WorkerFailed(422, f"the runtime crashed while {doing} ({how}); the agent restarted it")
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


# --------------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    """Settings of one agent.

    Attributes:
        token: shared secret every request must present.
        host, port: where to listen (port 0 picks a free one).
        max_bytes: largest accepted request body.
        timeout_s: limit on each phase of a request: upload, waiting for the runtime, measuring.
        max_timing_s: ceiling on the timing part of one measurement (also at most half of ``timeout_s``).
        max_uploads: uploads held at once (bounds temporary disk use); further clients wait.
        max_connections: open connections served at once (one thread each); more are answered 503.
        work_dir: parent of the agent's private temporary directory (default: the system's).
    """

    token: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_timing_s: float = MAX_TIMING_S
    max_uploads: int = 8
    max_connections: int = 64
    work_dir: Path | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AgentServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the agent's state: config, worker, locks, private directory.

    ``measurements`` keeps the (start, end) ``time.monotonic()`` interval of recent measurements, as
    reported by the worker, so that their serialisation can be checked.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, config: AgentConfig) -> None:
        if not config.token:
            raise InputError("the agent needs a token")
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        self.config = config
        try:
            super().__init__((config.host.strip("[]"), config.port), _Handler)
        except OSError as exc:
            raise InputError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        self._token_digest = hashlib.sha256(config.token.encode("utf-8")).digest()
        self.work_dir = Path(tempfile.mkdtemp(prefix="edgeprune-agent-", dir=config.work_dir))
        os.chmod(self.work_dir, 0o700)
        self.measure_lock = threading.Lock()
        self.upload_slots = threading.BoundedSemaphore(config.max_uploads)
        self.measurements: deque[tuple[float, float]] = deque(maxlen=10_000)
        self.worker = RuntimeWorker(self.work_dir)
        self._connections = threading.BoundedSemaphore(config.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread, unless ``max_connections`` are already open (then 503 at once)."""
        if not self._connections.acquire(blocking=False):
            body = b'{"error": "agent busy: too many open connections; retry later"}'
            head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("ascii")
            try:
                request.sendall(head + body)
            except OSError:
                pass
            log.warning("agent: %s refused: more than %d open connections", client_address[0],
                        self.config.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection in its thread and free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    @property
    def url(self) -> str:
        """``http://host:port`` of this agent."""
        host, port = self.server_address[:2]
        host_text = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{host_text}:{port}"

    def token_ok(self, header: str | None) -> bool:
        """Constant-time check of an ``Authorization: Bearer <token>`` header."""
        if not header:
            return False
        scheme, _, given = header.strip().partition(" ")
        digest = hashlib.sha256(given.strip().encode("latin-1", "replace")).digest()
        return hmac.compare_digest(digest, self._token_digest) and scheme.lower() == "bearer"

    def runtimes(self) -> dict[str, dict[str, Any]]:
        """What the worker reported about runtimes (starting it if needed)."""
        if self.worker.runtimes is None:
            if not self.measure_lock.acquire(timeout=self.config.timeout_s):
                raise Refused(503, "agent busy; retry later")
            try:
                self.worker.ensure_started()
            except WorkerFailed as exc:
                raise Refused(exc.status, str(exc)) from None
            finally:
                self.measure_lock.release()
        return self.worker.runtimes or {}

    def close(self) -> None:
        """Stop listening, stop the worker and delete the private directory."""
        self.server_close()
        acquired = self.measure_lock.acquire(timeout=5.0)  # a hung measurement must not block shutdown
        try:
            self.worker.stop()
        finally:
            if acquired:
                self.measure_lock.release()
        shutil.rmtree(self.work_dir, ignore_errors=True)


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = f"edgeprune-agent/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection

    def setup(self) -> None:
        self.timeout = self.server.config.timeout_s
        self._started = time.perf_counter()
        self._body_left = 0
        self._received = 0
        self._note = ""
        super().setup()

    # --- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the stdlib's access log; :meth:`_log_line` writes one line per request instead."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Stdlib-detected errors (bad request line, unknown method ...) as JSON too."""
        text = message or self.responses.get(code, ("error",))[0]
        self._respond(code, {"error": one_line(text)})

    def _respond(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="edgeprune-agent"')
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self._note += " (client went away)"
        if status >= 400:
            self._note = f"{self._note}: {payload.get('error', '')}" if self._note else str(payload.get("error", ""))
        self._drain()
        self._log_line(status)

    def _drain(self) -> None:
        """Read and discard a bounded part of an unread body so that the client can read our answer."""
        left = min(self._body_left, _DRAIN_LIMIT)
        self._body_left = 0
        try:
            self.connection.settimeout(2.0)
            while left > 0:
                chunk = self.rfile.read(min(left, _CHUNK))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _log_line(self, status: int) -> None:
        ms = (time.perf_counter() - self._started) * 1e3
        method = getattr(self, "command", None) or "-"
        path = one_line(urlsplit(getattr(self, "path", "") or "-").path, 60)
        size = f" {self._received / 2**20:.2f} MiB" if self._received else ""
        log.log(logging.INFO if status < 500 else logging.WARNING, "agent: %s %s %s -> %d%s %.0f ms %s",
                self.client_address[0], method, path, status, size, ms, one_line(self._note, 200) if self._note else "")

    def _dispatch(self, routes: dict[str, Callable[[], dict[str, Any]]]) -> None:
        path = urlsplit(self.path).path
        length = self.headers.get("Content-Length")
        self._body_left = int(length) if length and length.isdigit() else 0
        try:
            if path not in (INFO_PATH, MEASURE_PATH):
                raise Refused(404, f"no such endpoint {one_line(path, 60)}; use GET {INFO_PATH} or POST {MEASURE_PATH}")
            if path not in routes:
                raise Refused(405, f"method {self.command} not allowed on {path}")
            if not self.server.token_ok(self.headers.get(AUTH_HEADER)):
                raise Refused(401, "missing or wrong token (send 'Authorization: Bearer <token>')")
            payload = routes[path]()
        except Refused as exc:
            self._respond(exc.status, {"error": one_line(exc.message)})
            return
        except Exception as exc:  # a bug in the agent: one line to the client, the traceback to the log
            log.debug("internal error", exc_info=True)
            self._respond(500, {"error": f"internal agent error ({type(exc).__name__}); see the agent's log"})
            return
        self._respond(200, payload)

    def do_GET(self) -> None:
        """``GET /v1/info``."""
        self._dispatch({INFO_PATH: self._info})

    def do_POST(self) -> None:
        """``POST /v1/measure``."""
        self._dispatch({MEASURE_PATH: self._measure})

    # --- endpoints -----------------------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        config = self.server.config
        return {
            "protocol": PROTOCOL_VERSION,
            "edgeprune_version": __version__,
            "machine": machine_info(),
            "runtimes": self.server.runtimes(),
            "limits": {"max_bytes": config.max_bytes, "timeout_s": config.timeout_s,
                       "max_timing_s": self._max_timing_s()},
        }

    def _max_timing_s(self) -> float:
        config = self.server.config
        return min(config.max_timing_s, MAX_TIMING_S, config.timeout_s / 2)

    def _measure(self) -> dict[str, Any]:
        config = self.server.config
        try:
            request = MeasureRequest.from_header(self.headers.get(REQUEST_HEADER))
        except ProtocolError as exc:
            raise Refused(400, str(exc)) from None
        self._note = f"{request.format}/{request.runtime}"
        if self.headers.get("Transfer-Encoding"):
            raise Refused(411, "chunked uploads are not accepted; send Content-Length")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise Refused(411, "Content-Length is required")
        if not length_text.strip().isdigit():
            raise Refused(400, "Content-Length must be a non-negative integer")
        length = int(length_text)
        if length > config.max_bytes:
            raise Refused(413, f"the upload is {length} bytes; this agent accepts at most {config.max_bytes} "
                               "(start it with a larger --max-mb)")
        if length == 0:
            raise Refused(415, "empty body: send the model file")
        if not self.server.upload_slots.acquire(timeout=config.timeout_s):
            raise Refused(503, "agent busy (too many uploads in progress); retry later")
        request_dir: Path | None = None
        try:
            request_dir = Path(tempfile.mkdtemp(prefix="req-", dir=self.server.work_dir))
            upload = request_dir / _UPLOAD_NAMES[request.format]
            self._receive(upload, length)
            model_path = self._check_payload(request, upload, request_dir)
            reply = self._run_worker(request, model_path, request_dir)
        finally:
            self.server.upload_slots.release()
            if request_dir is not None:
                shutil.rmtree(request_dir, ignore_errors=True)
        stats = reply["stats"]
        self._note += f" median {stats['median_ms']:.3f} ms over {stats['runs']} runs"
        return {
            "protocol": PROTOCOL_VERSION,
            "stats": stats,
            "timing": reply["timing"],
            "load_ms": reply.get("load_ms"),
            "first_run_ms": reply.get("first_run_ms"),
            "environment": {
                "machine": machine_info(),
                "runtime": reply.get("runtime", request.runtime),
                "runtime_version": reply.get("runtime_version"),
                "device": request.device,
                "threads": request.threads,
                "precision": request.precision,
                "input_shape": list(request.input_shape),
                "edgeprune_version": __version__,
                "protocol": PROTOCOL_VERSION,
            },
        }

    def _receive(self, dest: Path, length: int) -> None:
        """Stream exactly ``length`` body bytes to ``dest`` within the upload time limit."""
        timeout_s = self.server.config.timeout_s
        deadline = time.monotonic() + timeout_s
        self._body_left = length
        try:
            with open(dest, "xb") as out:
                while self._body_left > 0:
                    if time.monotonic() > deadline:
                        raise Refused(408, f"the upload did not complete within {timeout_s:g} s")
                    chunk = self.rfile.read(min(self._body_left, _CHUNK))
                    if not chunk:
                        raise Refused(400, f"the upload ended {self._body_left} bytes short of its Content-Length")
                    out.write(chunk)
                    self._body_left -= len(chunk)
                    self._received += len(chunk)
        except (TimeoutError, socket.timeout):
            raise Refused(408, f"the upload stalled for more than {timeout_s:g} s") from None

    def _check_payload(self, request: MeasureRequest, upload: Path, request_dir: Path) -> Path:
        """Structural checks per format; returns the path the runtime should load (ONNX is checked in the worker)."""
        if request.format == "tflite":
            check_tflite(upload)
            return upload
        if request.format == "openvino":
            xml_path = unpack_openvino_zip(upload, request_dir, 2 * self.server.config.max_bytes)
            upload.unlink()
            return xml_path
        return upload

    def _run_worker(self, request: MeasureRequest, model_path: Path, request_dir: Path) -> dict[str, Any]:
        """Measure under the lock in the worker process; translate its failures into refusals."""
        server = self.server
        timeout_s = server.config.timeout_s
        if not server.measure_lock.acquire(timeout=timeout_s):
            raise Refused(503, f"agent busy: waited {timeout_s:g} s for earlier measurements; retry later")
        try:
            job = {"op": "measure", "request": request.to_dict(), "path": str(model_path),
                   "max_timing_s": self._max_timing_s()}
            try:
                reply = server.worker.call(job, timeout_s)
            except WorkerFailed as exc:
                raise Refused(exc.status, str(exc)) from None
            if reply.get("ok") and isinstance(reply.get("interval"), list):
                start, end = reply["interval"]
                server.measurements.append((float(start), float(end)))
        finally:
            server.measure_lock.release()
        if not reply.get("ok"):
            message = str(reply.get("error", "measurement failed")).replace(str(request_dir), "<upload>")
            status = reply.get("status")
            raise Refused(status if isinstance(status, int) and 400 <= status < 600 else 422, message)
        return reply


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    max_timing_s: float = MAX_TIMING_S,
    max_uploads: int = 8,
    work_dir: Path | None = None,
    on_ready: Callable[[AgentServer], None] | None = None,
) -> None:
    """Run an agent until interrupted (Ctrl-C or SIGTERM), then clean up its worker and files.

    ``on_ready`` is called with the listening server once the runtime worker is up.
    """
    config = AgentConfig(token=token, host=host, port=port, max_bytes=max_bytes, timeout_s=timeout_s,
                         max_timing_s=max_timing_s, max_uploads=max_uploads, work_dir=work_dir)
    server = AgentServer(config)
    previous = None
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        def _terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            runtimes = server.runtimes()
        except Refused as exc:
            raise InputError(f"the agent's runtime worker failed to start: {exc.message}") from None
        found = ", ".join(f"{name} {r['version']}" for name, r in runtimes.items() if r["installed"] and r["backend"])
        log.info("edgeprune agent listening on %s (token required; uploads up to %.0f MiB; timeout %g s); "
                 "runtimes: %s", server.url, max_bytes / 2**20, timeout_s, found or "none")
        if on_ready is not None:
            on_ready(server)
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log.info("edgeprune agent stopping")
    finally:
        server.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

"""HTTP request handling of the agent: routing, token check, upload limits and streaming, and answers.

One :class:`AgentRequestHandler` serves one connection (HTTP/1.0, one request): ``GET /v1/info`` and
``POST /v1/measure``. The request line and headers must arrive within ``header_timeout_s`` and an upload
within ``timeout_s``, each in all (:mod:`edgeprune.agent.deadline`); ``Content-Length`` is ASCII digits only.
The token is checked before anything else; a connection that shows the right one can no longer be dropped to
make room (:mod:`edgeprune.agent.connections`). Uploads are streamed into a per-request directory under the
agent's private directory, checked (:mod:`edgeprune.agent.checks`), measured in the worker process
(:mod:`edgeprune.agent.worker`) under the server's measurement lock, and deleted. Every answer
is JSON; refusals are ``{"error": "<one line>"}`` and tracebacks only go to the agent's log. The
server and its state live in :mod:`edgeprune.agent.server`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from edgeprune._version import __version__
from edgeprune.agent.checks import CHUNK, Refused, member_names
from edgeprune.agent.config import AgentConfig
from edgeprune.agent.connections import ConnectionTracker, Ticket
from edgeprune.agent.deadline import DeadlineReader
from edgeprune.agent.protocol import (
    AUTH_HEADER,
    INFO_PATH,
    MAX_TIMING_S,
    MEASURE_PATH,
    PROTOCOL_VERSION,
    REQUEST_HEADER,
    MeasureRequest,
    ProtocolError,
    one_line,
)
from edgeprune.agent.references import KeptReference, References
from edgeprune.agent.throttle import TokenThrottle
from edgeprune.agent.worker import RuntimeWorker, WorkerFailed
from edgeprune.environment import machine_info
from edgeprune.runtimes import facts_of_format


class AgentState(Protocol):
    """What a request handler reads from its server (:class:`~edgeprune.agent.server.AgentServer`)."""

    config: AgentConfig
    work_dir: Path
    worker: RuntimeWorker
    measure_lock: threading.Lock
    upload_slots: threading.BoundedSemaphore
    measurements: deque[tuple[float, float]]
    references: References

    throttle: TokenThrottle
    connections: ConnectionTracker

    def token_key(self, header: str | None) -> tuple[bytes, bool]:
        """The SHA-256 of the presented token, and whether it is the agent's."""
        ...

    def ticket(self, request: Any) -> Ticket | None:
        """The admission ticket of a connection."""
        ...

    def runtimes(self) -> dict[str, dict[str, Any]]:
        """What the worker reported about the runtimes on this device."""
        ...

log = logging.getLogger(__name__)

#: after refusing an upload early, read (and discard) at most this much of it so the client sees the answer
_DRAIN_LIMIT = 8 << 20
#: seconds allowed for writing an answer, and for reading what is drained of a refused upload
_ANSWER_S = 5.0
_DIGITS = re.compile(r"[0-9]{1,18}")


def _upload_name(fmt: str) -> str:
    """The name an upload of format ``fmt`` is saved under: the artifact's file, or a zip of its several files."""
    facts = facts_of_format(fmt)
    return "upload.zip" if facts.multi_file else f"model{facts.suffix}"


class AgentRequestHandler(BaseHTTPRequestHandler):
    """Serves one request to the agent (see the module docstring); ``server`` holds the shared state."""

    server: AgentState  # type: ignore[assignment]
    server_version = f"edgeprune-agent/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection

    def setup(self) -> None:
        self.timeout = self.server.config.header_timeout_s
        self._started = time.perf_counter()
        self._body_left = 0
        self._length: int | None = None
        self._received = 0
        self._note = ""
        super().setup()
        # the stdlib's rfile bounds each read; this one bounds each phase (headers, then the upload) in all
        self.rfile.close()
        self._reader = DeadlineReader(self.connection, self.server.config.header_timeout_s,
                                      self.server.ticket(self.request))
        self._reader.phase = "the request line and headers"
        self.rfile = io.BufferedReader(self._reader)

    # --- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the stdlib's access log; :meth:`_log_line` writes one line per request instead."""

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """The stdlib's notes on a connection it gave up on (headers not sent in time): the debug log."""
        log.debug("agent: %s: %s", self.client_address[0], format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Stdlib-detected errors (bad request line, unknown method ...) as JSON too."""
        text = message or self.responses.get(code, ("error",))[0]
        self._respond(code, {"error": one_line(text)})

    def _respond(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        try:
            self.connection.settimeout(_ANSWER_S)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="edgeprune-agent"')
            if status == 429:
                self.send_header("Retry-After", "60")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self._note += " (client went away)"
        if status >= 400:
            self._note = f"{self._note}: {payload.get('error', '')}" if self._note else str(payload.get("error", ""))
        if status in (401, 429):  # an unauthenticated body is never read, not even to be discarded
            self._body_left = 0
        self._drain()
        self._log_line(status)

    def _drain(self) -> None:
        """Read and discard a bounded part of an unread body so that the client can read our answer."""
        left = min(self._body_left, _DRAIN_LIMIT)
        self._body_left = 0
        try:
            self._reader.start(_ANSWER_S, "the rest of a refused upload")
            while left > 0:
                chunk = self.rfile.read(min(left, CHUNK))
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
        if self._reader.eof:  # the headers ended because the connection did (a client cut off): not a request
            self.close_connection = True
            log.debug("agent: %s closed before the end of its headers", self.client_address[0])
            return
        path = urlsplit(self.path).path
        try:
            self._length = content_length(self.headers.get_all("Content-Length") or [])
            self._body_left = self._length or 0
            if path not in (INFO_PATH, MEASURE_PATH):
                raise Refused(404, f"no such endpoint {one_line(path, 60)}; use GET {INFO_PATH} or POST {MEASURE_PATH}")
            if path not in routes:
                raise Refused(405, f"method {self.command} not allowed on {path}")
            self._check_token()
            payload = routes[path]()
        except Refused as exc:
            self._respond(exc.status, {"error": one_line(exc.message)})
            return
        except Exception as exc:  # a bug in the agent: one line to the client, the traceback to the log
            log.debug("internal error", exc_info=True)
            self._respond(500, {"error": f"internal agent error ({type(exc).__name__}); see the agent's log"})
            return
        self._respond(200, payload)

    def _check_token(self) -> None:
        """Refuse (401, or 429 past the throttle's limits) a missing or wrong token; a right one proves the
        connection, which can then no longer be dropped to make room for others."""
        key, ok = self.server.token_key(self.headers.get(AUTH_HEADER))
        if not ok:
            reason = self.server.throttle.failed(key, self.client_address[0])
            if reason is not None:
                raise Refused(429, f"{reason}; wait a minute")
            raise Refused(401, "missing or wrong token (send 'Authorization: Bearer <token>')")
        ticket = self.server.ticket(self.request)
        if ticket is not None:
            self.server.connections.prove(ticket)

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
                       "max_timing_s": self._max_timing_s(), "max_threads": config.max_threads},
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
        if request.threads > config.max_threads:
            raise Refused(400, f"threads={request.threads} but this agent runs at most {config.max_threads} (start "
                               "it with a larger --max-threads)")
        if self.headers.get("Transfer-Encoding"):
            raise Refused(411, "chunked uploads are not accepted; send Content-Length")
        length = self._length
        if length is None:
            raise Refused(411, "Content-Length is required")
        if length > config.max_bytes:
            raise Refused(413, f"the upload is {length} bytes; this agent accepts at most {config.max_bytes} "
                               "(start it with a larger --max-mb)")
        if length == 0:
            raise Refused(415, "empty body: send the model file")
        reference = self.server.references.get(request.pair_with) if request.pair_with else None
        if request.pair_with and reference is None:  # refused before it takes an upload slot
            raise Refused(409, "unknown reference: this agent does not hold it (it may have restarted); upload the "
                               "reference again with keep_as_reference")
        if not self.server.upload_slots.acquire(timeout=config.timeout_s):
            raise Refused(503, "agent busy (too many uploads in progress); retry later")
        request_dir: Path | None = None
        reference_id: str | None = None
        try:  # from here on, every way out gives the slot back
            request_dir = Path(tempfile.mkdtemp(prefix="req-", dir=self.server.work_dir))
            upload = request_dir / _upload_name(request.format)
            self._receive(upload, length)
            model_path, extra = self._check_payload(request, upload, request_dir)
            reply = self._run_worker(request, model_path, request_dir, reference, extra)
            if request.keep_as_reference:  # checked and measured: kept under the agent's own names
                reference_id = self._digest.hexdigest()
                self.server.references.keep(reference_id, request_dir, model_path, request)
                request_dir = None
        finally:
            self.server.upload_slots.release()
            if request_dir is not None:
                shutil.rmtree(request_dir, ignore_errors=True)
        stats = reply["stats"]
        self._note += f" median {stats['median_ms']:.3f} ms over {stats['runs']} runs"
        if reply.get("paired"):
            self._note += f", paired ratio {reply['paired']['ratio']:.3f}"
        return {
            "protocol": PROTOCOL_VERSION,
            "stats": stats,
            **({"paired": reply["paired"]} if reply.get("paired") else {}),
            **({"reference_id": reference_id} if reference_id else {}),
            "timing": reply["timing"],
            "load_ms": reply.get("load_ms"),
            "device_state": reply.get("device_state"),
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
        self._reader.start(timeout_s, "the upload")
        self._body_left = length
        self._digest = hashlib.sha256()
        try:
            with open(dest, "xb") as out:
                while self._body_left > 0:
                    chunk = self.rfile.read(min(self._body_left, CHUNK))
                    if not chunk:
                        raise Refused(400, f"the upload ended {self._body_left} bytes short of its Content-Length")
                    out.write(chunk)
                    self._digest.update(chunk)
                    self._body_left -= len(chunk)
                    self._received += len(chunk)
        except (TimeoutError, socket.timeout):
            raise Refused(408, f"the upload did not complete within {timeout_s:g} s") from None

    def _check_payload(self, request: MeasureRequest, upload: Path,
                       request_dir: Path) -> tuple[Path, dict[str, Any]]:
        """The path the runtime should load, and what the worker's job needs besides. Files are checked by the
        worker under its limits (:mod:`edgeprune.agent.checks`); a several-file artifact's zip is unpacked there."""
        if facts_of_format(request.format).multi_file:
            main = request_dir / member_names(request.format)[0]
            return main, {"archive": str(upload), "max_unpacked": 2 * self.server.config.max_bytes}
        return upload, {}

    def _run_worker(self, request: MeasureRequest, model_path: Path, request_dir: Path,
                    reference: KeptReference | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Measure under the lock in the worker process (paired with ``reference`` when given); translate its
        failures into refusals."""
        server = self.server
        timeout_s = server.config.timeout_s
        if not server.measure_lock.acquire(timeout=timeout_s):
            raise Refused(503, f"agent busy: waited {timeout_s:g} s for earlier measurements; retry later")
        try:
            job = {"op": "measure", "request": request.to_dict(), "path": str(model_path),
                   "max_timing_s": self._max_timing_s(), **(extra or {})}
            if reference is not None:
                job["reference"] = {"path": str(reference.model_path), "request": reference.request.to_dict()}
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


def content_length(values: list[str]) -> int | None:
    """The body length the ``Content-Length`` header(s) give: None when absent; refused (400) unless it is one
    value of 1 to 18 ASCII digits (``str.isdigit`` also takes ``²`` and other digits ``int`` refuses)."""
    if not values:
        return None
    texts = {v.strip(" \t") for v in values}
    if len(texts) != 1:
        raise Refused(400, "conflicting Content-Length headers")
    text = texts.pop()
    if not _DIGITS.fullmatch(text):
        raise Refused(400, "Content-Length must be 1 to 18 ASCII digits")
    return int(text)

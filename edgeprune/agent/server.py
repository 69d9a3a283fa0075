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

The agent is split by concern: this module holds the server (settings, token check, connection limits,
the private directory, :func:`serve`); :mod:`edgeprune.agent.config` its settings; :mod:`edgeprune.agent.handler` handles each HTTP
request; :mod:`edgeprune.agent.checks` validates uploaded model files; and
:mod:`edgeprune.agent.worker` is the measurement worker process and its JSON-lines protocol.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edgeprune.agent.checks import Refused
from edgeprune.agent.config import AgentConfig
from edgeprune.agent.handler import AgentRequestHandler
from edgeprune.agent.protocol import DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_TIMEOUT_S, MAX_TIMING_S
from edgeprune.agent.references import References
from edgeprune.agent.throttle import TokenThrottle
from edgeprune.agent.worker import RuntimeWorker, WorkerFailed
from edgeprune.errors import InputError

log = logging.getLogger(__name__)


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
            super().__init__((config.host.strip("[]"), config.port), AgentRequestHandler)
        except OSError as exc:
            raise InputError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        self._token_digest = hashlib.sha256(config.token.encode("utf-8")).digest()
        self.throttle = TokenThrottle(config.max_token_failures)
        self.work_dir = Path(tempfile.mkdtemp(prefix="edgeprune-agent-", dir=config.work_dir))
        os.chmod(self.work_dir, 0o700)
        self.measure_lock = threading.Lock()
        self.upload_slots = threading.BoundedSemaphore(config.max_uploads)
        self.measurements: deque[tuple[float, float]] = deque(maxlen=10_000)
        self.references = References()
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
        self.references.clear()
        shutil.rmtree(self.work_dir, ignore_errors=True)


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

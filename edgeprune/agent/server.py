"""The on-device measurement agent: an HTTP server that times model artifacts with the device's runtime.

Security model (the agent accepts files from the network, so it is built to refuse rather than trust;
docs/security.md says what it defends against and what not):

* Every request needs ``Authorization: Bearer <token>`` (at least 16 characters unless ``--insecure-token``),
  compared in constant time. Wrong tokens are counted per token, per address and in all, and answered 429
  past a limit; the right token is never refused (:mod:`edgeprune.agent.throttle`).
* It binds to 127.0.0.1 unless told otherwise; there is no TLS (tunnel over SSH on untrusted networks).
* Connections are capped in all and per address; one that has not shown the token yet is the first to be
  dropped when a cap is reached (:mod:`edgeprune.agent.connections`), and has ``header_timeout_s`` for its
  whole request line and headers; an upload has ``timeout_s`` in all (:mod:`edgeprune.agent.deadline`).
* Bodies are capped (``max_bytes``), streamed to disk (never held whole in memory) and accepted only as
  model files, checked before any runtime sees them (:mod:`edgeprune.agent.checks`).
* Uploads are written only into the agent's private temporary directory, under names the agent
  chooses (``model.onnx`` ...), and deleted after each request; the directory goes when the agent stops, and
  one left by a killed agent goes when the next starts (:mod:`edgeprune.agent.workdir`). Nothing received is
  ever executed or unpickled; the wire format is JSON.
* Models are unpacked, checked, loaded and timed in a separate worker process (spoken to with JSON lines)
  under memory, CPU-time and thread limits, with a clean environment (:mod:`edgeprune.agent.limits`), so a
  runtime that crashes on a malformed model, or hangs past the per-request timeout, is killed and restarted
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
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edgeprune.agent.checks import Refused
from edgeprune.agent.config import MIN_TOKEN_CHARS, AgentConfig
from edgeprune.agent.connections import ConnectionTracker, Ticket
from edgeprune.agent.handler import AgentRequestHandler
from edgeprune.agent.protocol import DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_TIMEOUT_S, MAX_TIMING_S
from edgeprune.agent.references import References
from edgeprune.agent.throttle import TokenThrottle
from edgeprune.agent.workdir import PrivateDir
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
        if len(config.token) < MIN_TOKEN_CHARS and not config.insecure_token:
            raise InputError(f"the token is {len(config.token)} characters; the agent needs at least "
                             f"{MIN_TOKEN_CHARS} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'), "
                             "or --insecure-token to accept a guessable one")
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        self.config = config
        try:
            super().__init__((config.host.strip("[]"), config.port), AgentRequestHandler)
        except OSError as exc:
            raise InputError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        self._token_digest = hashlib.sha256(config.token.encode("utf-8")).digest()
        self.throttle = TokenThrottle(config.max_token_failures, config.max_source_failures,
                                      config.max_global_failures)
        self._private = PrivateDir(config.work_dir)
        self.work_dir = self._private.path
        self.measure_lock = threading.Lock()
        self.upload_slots = threading.BoundedSemaphore(config.max_uploads)
        self.measurements: deque[tuple[float, float]] = deque(maxlen=10_000)
        self.references = References()
        self.worker = RuntimeWorker(self.work_dir, config.worker_limits())
        self.connections = ConnectionTracker(config.max_connections, config.max_connections_per_source)
        self._tickets: dict[int, Ticket] = {}

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread if the connection caps admit it (evicting the oldest connection that
        has not shown the token where one is in the way); otherwise answer 503 at once."""
        ticket = self.connections.admit(request, str(client_address[0]))
        if ticket is None:
            body = b'{"error": "agent busy: too many open connections; retry later"}'
            head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").encode("ascii")
            try:
                request.sendall(head + body)
            except OSError:
                pass
            log.warning("agent: %s refused: %d open connections, all busy with measurements", client_address[0],
                        self.config.max_connections)
            self.shutdown_request(request)
            return
        self._tickets[id(request)] = ticket
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._tickets.pop(id(request), None)
            self.connections.release(ticket)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection in its thread and free its place."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            ticket = self._tickets.pop(id(request), None)
            if ticket is not None:
                self.connections.release(ticket)

    def ticket(self, request: Any) -> Ticket | None:
        """The admission ticket of the connection ``request`` (the handler proves it after the token check)."""
        return self._tickets.get(id(request))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke outside the handler's own error handling: a line in the log, no traceback on
        stderr."""
        log.debug("agent: connection from %s ended with an error", client_address[0], exc_info=True)

    @property
    def url(self) -> str:
        """``http://host:port`` of this agent."""
        host, port = self.server_address[:2]
        host_text = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{host_text}:{port}"

    def token_ok(self, header: str | None) -> bool:
        """Constant-time check of an ``Authorization: Bearer <token>`` header."""
        return self.token_key(header)[1]

    def token_key(self, header: str | None) -> tuple[bytes, bool]:
        """The SHA-256 of the token an ``Authorization`` header presents (what the throttle counts failures by),
        and whether it is the agent's token (compared in constant time)."""
        scheme, _, given = (header or "").strip().partition(" ")
        digest = hashlib.sha256(given.strip().encode("latin-1", "replace")).digest()
        return digest, hmac.compare_digest(digest, self._token_digest) and scheme.lower() == "bearer"

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
        self._private.remove()


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
    **settings: Any,
) -> None:
    """Run an agent until interrupted (Ctrl-C, SIGTERM or SIGHUP), then clean up its worker and files.

    ``settings`` are further :class:`AgentConfig` fields (limits). ``on_ready`` is called with the listening
    server once the runtime worker is up.
    """
    config = AgentConfig(token=token, host=host, port=port, max_bytes=max_bytes, timeout_s=timeout_s,
                         max_timing_s=max_timing_s, max_uploads=max_uploads, work_dir=work_dir, **settings)
    server = AgentServer(config)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def _terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        # SIGHUP: the SSH session or terminal the agent was started from closed
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                number = getattr(signal, name)
                previous[number] = signal.signal(number, _terminate)
    try:
        try:
            runtimes = server.runtimes()
        except Refused as exc:
            raise InputError(f"the agent's runtime worker failed to start: {exc.message}") from None
        found = ", ".join(f"{name} {r['version']}" for name, r in runtimes.items() if r["installed"] and r["backend"])
        log.info("edgeprune agent listening on %s (token required; uploads up to %.0f MiB; timeout %g s; worker: "
                 "%s); runtimes: %s", server.url, max_bytes / 2**20, timeout_s, server.worker.limits.describe(),
                 found or "none")
        if on_ready is not None:
            on_ready(server)
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log.info("edgeprune agent stopping")
    finally:
        server.close()
        for number, handler in previous.items():
            signal.signal(number, handler)

"""The settings of one agent (``edgeprune agent`` flags), shared by the server and its request handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.agent.limits import WorkerLimits, default_max_threads, default_memory_mb, usable_cores
from edgeprune.agent.protocol import DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_TIMEOUT_S, MAX_TIMING_S
from edgeprune.agent.throttle import MAX_GLOBAL, MAX_PER_SOURCE, MAX_SAME_TOKEN

#: shortest token accepted without ``insecure_token`` (``--insecure-token``)
MIN_TOKEN_CHARS = 16
#: seconds a client has to send its request line and headers
DEFAULT_HEADER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class AgentConfig:
    """Settings of one agent.

    Attributes:
        token: shared secret every request must present (at least :data:`MIN_TOKEN_CHARS` characters).
        host, port: where to listen (port 0 picks a free one).
        max_bytes: largest accepted request body.
        timeout_s: limit on each phase of a request: the whole upload, waiting for the runtime, measuring.
        max_timing_s: ceiling on the timing part of one measurement (also at most half of ``timeout_s``).
        max_uploads: uploads held at once (bounds temporary disk use); further clients wait.
        max_connections: open connections served at once (one thread each); past it the oldest connection that
            has not yet shown the token is dropped, or the newcomer answered 503 (:mod:`edgeprune.agent.connections`).
        max_connections_per_source: connections one address may hold open before showing the token.
        header_timeout_s: time a client has to send its whole request line and headers.
        work_dir: parent of the agent's private temporary directory (default: the system's).
        max_token_failures: tries of one wrong token within a minute before it is answered 429.
        max_source_failures: wrong tokens from one address within a minute before they are answered 429.
        max_global_failures: wrong tokens from all addresses within a minute before they are answered 429
            (:mod:`edgeprune.agent.throttle`; the right token is never refused).
        worker_memory_mb: the measuring worker's address-space limit in MiB (0: none).
        worker_cpu_s: the CPU seconds one job of the worker may use (0: none; default: ``timeout_s`` on every
            usable core).
        max_threads: the most intra-op threads a request may ask for.
        insecure_token: accept a token shorter than :data:`MIN_TOKEN_CHARS`.
    """

    token: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_timing_s: float = MAX_TIMING_S
    max_uploads: int = 8
    max_connections: int = 64
    max_connections_per_source: int = 16
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    work_dir: Path | None = None
    max_token_failures: int = MAX_SAME_TOKEN
    max_source_failures: int = MAX_PER_SOURCE
    max_global_failures: int = MAX_GLOBAL
    worker_memory_mb: int = field(default_factory=default_memory_mb)
    worker_cpu_s: float | None = None
    max_threads: int = field(default_factory=default_max_threads)
    insecure_token: bool = False

    def worker_limits(self) -> WorkerLimits:
        """The measuring worker's limits."""
        cpu_s = self.worker_cpu_s if self.worker_cpu_s is not None else self.timeout_s * usable_cores()
        return WorkerLimits(memory_bytes=self.worker_memory_mb << 20, cpu_s=cpu_s, max_threads=self.max_threads)

"""The settings of one agent (``edgeprune agent`` flags), shared by the server and its request handler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeprune.agent.protocol import DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_TIMEOUT_S, MAX_TIMING_S
from edgeprune.agent.throttle import MAX_FAILURES


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
        max_token_failures: wrong tokens one address may send within a minute before it is refused (429)
            without its token being compared (:mod:`edgeprune.agent.throttle`).
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
    max_token_failures: int = MAX_FAILURES

"""A real ``edgeprune agent`` on loopback for a test, served on a thread and closed afterwards."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from edgeprune.agent.server import AgentConfig, AgentServer


@contextmanager
def running_agent(config: AgentConfig) -> Iterator[AgentServer]:
    """Start an agent with ``config``; shut it down, close it and join its thread on exit."""
    server = AgentServer(config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.close()
        thread.join(5)

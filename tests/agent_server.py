"""A real ``edgeprune agent`` on loopback for a test: served on a thread and closed afterwards, or run as a process of
its own (``agent_process``)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgeprune.agent.client import AgentClient
from edgeprune.agent.server import AgentConfig, AgentServer
from edgeprune.errors import EdgepruneError


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


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def agent_process(command: list[str], token: str, env: dict[str, str], what: str,
                  cwd: Path | None = None) -> Iterator[str]:
    """Run ``command`` (an ``edgeprune agent`` command line, given a free port with ``--port``) as a process; yield
    its URL once it answers with ``token``, fail the test if it exits or is not up within 90 s (``what`` names it);
    terminate it on exit."""
    port = free_port()
    proc = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the agent exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
            try:
                AgentClient(url, token, timeout_s=10).info()
                break
            except EdgepruneError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{what} did not come up within 90 s")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

"""A loopback load test of ``edgeprune agent``: slow strangers, a crowd of valid clients and a token guesser at once,
while the right client keeps measuring.

The agent runs as ``edgeprune agent`` in a process of its own (so that the load, made here, does not share its
interpreter). Everything is bounded in time and stops by itself: the clients' timeouts, the tricklers stop when
the clients are done. The scenario is the issue's: 64 slow connections, 50 concurrent valid measurements and 200
wrong tokens, all from 127.0.0.1 like clients behind an SSH tunnel. Run with ``-s`` to see the numbers:

    PYTHONPATH=. python -m pytest -s tests/agent/test_agent_load.py
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from agent_hostile import INPUT, QUICK, SHAPE, Tricklers, post, relu_onnx

from edgeprune.agent.client import AgentClient
from edgeprune.agent.protocol import INFO_PATH, TOKEN_ENV
from edgeprune.errors import EdgepruneError
from edgeprune.runtimes.base import Artifact
from edgeprune.target import load_target

TOKEN = "load-test-token-0123456789abcdef"
REPO_ROOT = Path(__file__).resolve().parents[2]
#: the agent's --timeout: every wait of a request (upload, queue, measurement) is bounded by it
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, TOKEN_ENV: TOKEN,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path_factory.mktemp("load") / "agent.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgeprune", "agent", "--port", str(port), "--timeout",
                                 str(TIMEOUT_S), "--header-timeout", "3"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                AgentClient(url, TOKEN, timeout_s=10).info()
                break
            except EdgepruneError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the agent did not come up: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_load(url: str, model: Artifact, slow: int, valid: int, wrong: int, right: int) -> dict[str, Any]:
    """The scenario; returns what each party saw."""
    host, port = url.removeprefix("http://").split(":")
    address = (host, int(port))
    target = load_target("cpu")
    right_seconds: list[float] = []
    right_errors: list[str] = []
    wrong_statuses: Counter[int] = Counter()

    def one_valid(_: int) -> tuple[bool, float, str]:
        started = time.monotonic()
        try:
            AgentClient(url, TOKEN, timeout_s=TIMEOUT_S).measure(model, target, QUICK)
            return True, time.monotonic() - started, ""
        except EdgepruneError as exc:
            return False, time.monotonic() - started, str(exc)

    def guesser(share: range) -> None:
        for i in share:
            wrong_statuses[post(address, b"", f"wrong-guess-{i:06d}-abcdef", path=INFO_PATH, timeout=TIMEOUT_S)[0]] += 1

    def right_client() -> None:
        client = AgentClient(url, TOKEN, timeout_s=TIMEOUT_S)
        for _ in range(right):
            started = time.monotonic()
            try:
                client.measure(model, target, QUICK)
                right_seconds.append(time.monotonic() - started)
            except EdgepruneError as exc:
                right_errors.append(str(exc))

    started = time.monotonic()
    with Tricklers(address, count=slow, interval=1.0) as tricklers:
        time.sleep(0.5)  # the slow connections are in before anyone else
        guessers = [threading.Thread(target=guesser, args=(range(k, wrong, 2),)) for k in range(2)]
        righteous = threading.Thread(target=right_client)
        for thread in (*guessers, righteous):
            thread.start()
        with ThreadPoolExecutor(max_workers=valid) as pool:
            crowd = list(pool.map(one_valid, range(valid)))
        for thread in (*guessers, righteous):
            thread.join(3 * TIMEOUT_S)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "slow_connections": slow, "slow_closed_by_agent": tricklers.closed,
        "valid_ok": sum(ok for ok, _, _ in crowd), "valid": valid,
        "valid_median_s": round(statistics.median(s for _, s, _ in crowd), 2),
        "valid_max_s": round(max(s for _, s, _ in crowd), 2),
        "valid_errors": sorted({e for ok, _, e in crowd if not ok})[:3],
        "wrong_tokens": dict(wrong_statuses),
        "right_ok": len(right_seconds), "right": right, "right_errors": right_errors[:3],
        "right_max_s": round(max(right_seconds, default=float("nan")), 2),
    }


def _check(summary: dict[str, Any]) -> None:
    print("\nagent load:", json.dumps(summary))  # the numbers, for `pytest -s`
    assert summary["right_ok"] == summary["right"], summary
    assert summary["right_max_s"] < TIMEOUT_S, summary
    assert summary["valid_ok"] == summary["valid"], summary
    assert set(summary["wrong_tokens"]) <= {401, 429} and sum(summary["wrong_tokens"].values()) > 0, summary
    assert summary["slow_closed_by_agent"] > 0, summary


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    path = tmp_path_factory.mktemp("load-model") / "relu.onnx"
    path.write_bytes(relu_onnx())
    return Artifact(path, "onnx", INPUT, SHAPE)


def test_the_right_client_measures_through_64_slow_strangers_50_valid_clients_and_200_wrong_tokens(
        agent_url: str, model: Artifact) -> None:
    """The issue's scenario (about 10 s on two busy cores)."""
    _check(run_load(agent_url, model, slow=64, valid=50, wrong=200, right=5))

"""The agent against hostile and unlucky clients (issue 36): a real agent on loopback, real sockets, a real worker.

Each test is one finding of the issue, and failed on the agent before the fix: slots lost to unknown references,
slow clients starving others, wrong tokens locking out the right one, a worker without limits, IR zips
unpacked in the server, a Content-Length of ``²``, external data the check missed, uploads left after a kill.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from agent_hostile import INPUT, QUICK, SHAPE, Tricklers, memory_bomb_onnx, meta, post, raw_exchange, relu_onnx
from agent_server import running_agent

from edgeprune.agent.checks import Refused, check_upload
from edgeprune.agent.client import AgentClient
from edgeprune.agent.protocol import INFO_PATH, MEASURE_PATH, REQUEST_HEADER, TOKEN_ENV
from edgeprune.agent.server import AgentConfig, AgentServer
from edgeprune.cli.main import main
from edgeprune.errors import InputError
from edgeprune.paired import PairingSpec
from edgeprune.runtimes.base import Artifact
from edgeprune.target import load_target

TOKEN = "hardening-test-token-0123456789abcdef"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _address(server: AgentServer) -> tuple[str, int]:
    host, port = server.server_address[:2]
    return str(host), int(port)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    path = tmp_path_factory.mktemp("hardening") / "relu.onnx"
    path.write_bytes(relu_onnx())
    return Artifact(path, "onnx", INPUT, SHAPE)


def _measures(server: AgentServer, model: Artifact) -> None:
    status, answer = post(_address(server), model.path.read_bytes(), TOKEN, meta())
    assert status == 200, answer
    assert answer["stats"]["runs"] >= 1


# ------------------------------------------------------------------------------------------------
# upload slots
# ------------------------------------------------------------------------------------------------


def test_fifty_requests_naming_unknown_references_leave_the_agent_serving(model: Artifact) -> None:
    """A 409 for an unknown reference used to keep its upload slot: eight of them wedged the agent."""
    with running_agent(AgentConfig(token=TOKEN, port=0, max_uploads=2, timeout_s=5.0)) as server:
        body = model.path.read_bytes()
        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(lambda i: post(_address(server), body, TOKEN, meta(pair_with=f"{i:064x}")),
                                    range(50)))
        assert [status for status, _ in answers] == [409] * 50, answers[:3]
        assert "unknown reference" in answers[0][1]["error"]
        _measures(server, model)


def test_the_client_uploads_its_reference_again_after_the_agent_evicted_it(tmp_path: Path) -> None:
    """The agent keeps two references; a third client's evicts the first's, whose next pair gets 409 and re-uploads."""
    paths = []
    for name in ("a", "b", "c", "candidate"):
        paths.append(tmp_path / f"{name}.onnx")
        paths[-1].write_bytes(relu_onnx(name))
    refs = [Artifact(p, "onnx", INPUT, SHAPE) for p in paths[:3]]
    candidate = Artifact(paths[3], "onnx", INPUT, SHAPE)
    spec = PairingSpec(rounds=2, max_rounds=2, extra_rounds=1, min_round_seconds=0.005, min_runs=2, warmup_runs=1)
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=30.0)) as server:
        clients = [AgentClient(server.url, TOKEN) for _ in refs]
        for client, ref in zip(clients, refs):
            assert client.measure_paired(ref, candidate, load_target("cpu"), spec).paired is not None
        first_id = clients[0]._reference_ids[str(refs[0].path)]
        assert server.references.get(first_id) is None  # evicted by the third
        again = clients[0].measure_paired(refs[0], candidate, load_target("cpu"), spec)
        assert again.paired is not None and server.references.get(first_id) is not None


# ------------------------------------------------------------------------------------------------
# slow clients
# ------------------------------------------------------------------------------------------------


def test_headers_trickled_a_byte_at_a_time_are_cut_off_at_the_header_deadline() -> None:
    """The timeout used to apply per read: a byte every 0.3 s held the connection for ever."""
    with running_agent(AgentConfig(token=TOKEN, port=0, header_timeout_s=1.5, timeout_s=60.0)) as server:
        with Tricklers(_address(server), count=1, interval=0.3) as slow:
            deadline = time.monotonic() + 8.0
            while not slow.lifetimes and time.monotonic() < deadline:
                time.sleep(0.05)
        assert slow.lifetimes, "the agent kept a trickling connection open for 8 s"
        assert slow.lifetimes[0] < 3.0


def test_an_upload_trickled_a_byte_at_a_time_is_refused_at_the_upload_deadline() -> None:
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=2.0)) as server:
        started = time.monotonic()
        with socket.create_connection(_address(server), timeout=10) as conn:
            conn.sendall((f"POST {MEASURE_PATH} HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n{REQUEST_HEADER}: "
                          f"{meta()}\r\nContent-Length: 10000\r\n\r\n").encode())
            answer = b""
            conn.settimeout(0.3)
            while time.monotonic() - started < 8 and not answer:
                try:
                    conn.sendall(b"\0")
                    answer = conn.recv(65536)
                except (TimeoutError, BlockingIOError):
                    continue
                except OSError:
                    break
        assert answer.startswith(b"HTTP/1.0 408"), answer[:200]
        assert time.monotonic() - started < 4.0


def test_slow_strangers_do_not_starve_the_right_client(model: Artifact) -> None:
    """64 half-sent requests used to take every connection: everyone else got 503 for as long as they lasted."""
    config = AgentConfig(token=TOKEN, port=0, max_connections=16, max_connections_per_source=4, header_timeout_s=3.0,
                         timeout_s=20.0)
    with running_agent(config) as server, Tricklers(_address(server), count=32, interval=1.0) as slow:
        time.sleep(1.5)  # every place taken by a trickler, all old enough to be evicted
        client = AgentClient(server.url, TOKEN, timeout_s=20.0)
        started = time.monotonic()
        for _ in range(3):
            assert client.measure(model, load_target("cpu"), QUICK).stats.runs >= 1
        assert time.monotonic() - started < 15.0
        assert server.connections.evicted > 0 and slow.closed > 0


# ------------------------------------------------------------------------------------------------
# tokens
# ------------------------------------------------------------------------------------------------


def test_wrong_tokens_from_the_right_clients_address_do_not_lock_it_out() -> None:
    """After 5 wrong tokens from 127.0.0.1 the right token used to get 429 (behind a tunnel, everyone is 127.0.0.1)."""
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=10.0)) as server:
        statuses = [post(_address(server), b"", f"guess-{i:04d}-0123456789", path=INFO_PATH)[0] for i in range(30)]
        assert set(statuses) <= {401, 429} and statuses[:20] == [401] * 20
        assert statuses[-1] == 429  # past the per-address limit the guesser is told so
        status, answer = post(_address(server), b"", TOKEN, path=INFO_PATH)
        assert status == 200, answer


def test_wrong_tokens_spread_over_many_addresses_are_throttled_in_all() -> None:
    """Guesses spread over 25 source addresses were never throttled."""
    config = AgentConfig(token=TOKEN, port=0, timeout_s=10.0, max_global_failures=20)
    with running_agent(config) as server:
        statuses = []
        for i in range(50):
            source = f"127.0.0.{2 + i % 25}"
            statuses.append(post(_address(server), b"", f"guess-{i:04d}-0123456789", path=INFO_PATH,
                                 source=source)[0])
        assert statuses[:20] == [401] * 20 and statuses[20:] == [429] * 30
        assert post(_address(server), b"", TOKEN, path=INFO_PATH, source="127.0.0.2")[0] == 200


def test_a_token_shorter_than_sixteen_characters_is_refused_unless_insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="at least 16"):
        AgentServer(AgentConfig(token="x" * 15, port=0))
    monkeypatch.setenv(TOKEN_ENV, "short")
    assert main(["agent", "--port", "0"]) == 2
    server = AgentServer(AgentConfig(token="x" * 15, port=0, insecure_token=True))
    server.close()


# ------------------------------------------------------------------------------------------------
# the worker's limits
# ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads the worker's /proc entries (Linux)")
def test_the_worker_runs_under_limits_without_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("SOME_SERVICE_SECRET", "do-not-pass-me")
    config = AgentConfig(token=TOKEN, port=0, worker_memory_mb=3000, worker_cpu_s=50.0, max_threads=4)
    with running_agent(config) as server:
        assert server.runtimes()
        proc = server.worker._proc
        assert proc is not None
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert TOKEN.encode() not in environ and b"do-not-pass-me" not in environ
        assert f"TMPDIR={server.work_dir}".encode() in environ.split(b"\0")
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        address_space = next(line for line in limits.splitlines() if line.startswith("Max address space"))
        assert str(3000 << 20) in address_space
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core.split()[4] == "0"


def test_a_memory_bomb_is_refused_and_the_agent_keeps_serving(model: Artifact) -> None:
    """A 180-byte ONNX graph used to take the worker to 4.4 GiB and got 200."""
    with running_agent(AgentConfig(token=TOKEN, port=0, worker_memory_mb=1024, timeout_s=60.0)) as server:
        status, answer = post(_address(server), memory_bomb_onnx(), TOKEN, meta(shape=(1,)))
        assert status == 422, answer
        assert "1024 MiB" in answer["error"] and "\n" not in answer["error"]
        _measures(server, model)


def test_threads_beyond_the_agents_limit_are_refused(model: Artifact) -> None:
    with running_agent(AgentConfig(token=TOKEN, port=0, max_threads=4)) as server:
        status, answer = post(_address(server), model.path.read_bytes(), TOKEN, meta(threads=64))
        assert status == 400 and "--max-threads" in answer["error"], answer
        assert post(_address(server), b"", TOKEN, path=INFO_PATH)[1]["limits"]["max_threads"] == 4


def test_a_job_past_its_cpu_time_is_ended_and_the_worker_restarted(model: Artifact) -> None:
    """Under load this once waited out the whole 60 s: importing OpenVINO in the worker forked a telemetry
    process that kept the dead worker's reply pipe open (edgeprune.runtimes.openvino.telemetry now keeps it off)."""
    config = AgentConfig(token=TOKEN, port=0, worker_cpu_s=1.0, max_timing_s=20.0, timeout_s=60.0)
    with running_agent(config) as server:
        endless = {"warmup_runs": 0, "min_runs": 100_000, "max_runs": 1_000_000, "min_seconds": 20.0,
                   "max_cv": 10.0, "retries": 0}
        started = time.monotonic()
        status, answer = post(_address(server), model.path.read_bytes(), TOKEN, meta(timing=endless))
        assert status == 422 and "CPU time limit" in answer["error"], answer
        assert time.monotonic() - started < 15.0
        _measures(server, model)


# ------------------------------------------------------------------------------------------------
# OpenVINO IR zips
# ------------------------------------------------------------------------------------------------


def test_an_ir_zip_is_unpacked_by_the_worker_not_the_server(model: Artifact, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_hostile import ir_zip

    upload = ir_zip(model.path, tmp_path)

    def no_zip_here(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server process opened a zip")

    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=60.0)) as server:
        monkeypatch.setattr(zipfile, "ZipFile", no_zip_here)  # in this process: the server's threads
        status, answer = post(_address(server), upload, TOKEN, meta("openvino", "openvino"))
        assert status == 200, answer
        assert answer["environment"]["runtime"] == "openvino"


def _many_members(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(count):
            archive.writestr(f"{i}", b"")
    return buffer.getvalue()


def test_a_zip_of_many_members_is_refused_before_its_directory_is_read() -> None:
    """A million empty members took the server 16 s and 480 MiB; the end record's count is now read first."""
    body = _many_members(30_000)
    with running_agent(AgentConfig(token=TOKEN, port=0, max_bytes=8 << 20, timeout_s=60.0)) as server:
        started = time.monotonic()
        status, answer = post(_address(server), body, TOKEN, meta("openvino", "openvino"))
        assert status == 415 and "declares 30000 members" in answer["error"], answer
        assert time.monotonic() - started < 5.0


def test_an_ir_member_that_unpacks_past_the_cap_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.xml", b"<net/>")
        archive.writestr("model.bin", bytes(32 << 20))  # 32 MiB of zeros: about 32 KiB deflated
    with running_agent(AgentConfig(token=TOKEN, port=0, max_bytes=1 << 20, timeout_s=60.0)) as server:
        status, answer = post(_address(server), buffer.getvalue(), TOKEN, meta("openvino", "openvino"))
        assert status == 413 and "unpacks to" in answer["error"], answer


# ------------------------------------------------------------------------------------------------
# Content-Length
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9\xb2", b"+12", b"1_000", b"12 34", b"0x10", b"1" * 19, b"-1"])
def test_content_length_must_be_ascii_digits(value: bytes) -> None:
    """``²`` passes str.isdigit() and then broke int(): the connection dropped with a traceback."""
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=10.0)) as server:
        for method, path in (("POST", MEASURE_PATH), ("GET", INFO_PATH)):
            request = (f"{method} {path} HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n{REQUEST_HEADER}: {meta()}\r\n"
                       ).encode() + b"Content-Length: " + value + b"\r\n\r\n"
            answer = raw_exchange(_address(server), request)
            assert answer.startswith(b"HTTP/1.0 400"), answer[:200]
            assert b'"error": "Content-Length must be 1 to 18 ASCII digits"' in answer


def test_conflicting_content_lengths_are_refused() -> None:
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=10.0)) as server:
        request = (f"POST {MEASURE_PATH} HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n{REQUEST_HEADER}: {meta()}\r\n"
                   "Content-Length: 4\r\nContent-Length: 400\r\n\r\nabcd").encode()
        answer = raw_exchange(_address(server), request)
        assert answer.startswith(b"HTTP/1.0 400") and b"conflicting Content-Length" in answer, answer[:200]


# ------------------------------------------------------------------------------------------------
# ONNX external data, wherever a tensor can name it
# ------------------------------------------------------------------------------------------------


def _external(name: str, dims: tuple[int, ...] = (4,), data_type: int | None = None) -> Any:
    from onnx import TensorProto

    tensor = TensorProto(name=name, data_type=data_type or TensorProto.FLOAT, dims=list(dims),
                         data_location=TensorProto.EXTERNAL)
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    return tensor


def _hostile_model(place: str) -> bytes:
    """A model that names external data at ``place`` (the rest is a valid Relu graph)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", [INPUT], ["y"])]
    initializers: list[Any] = []
    sparse: list[Any] = []
    functions: list[Any] = []
    if place in ("sparse-values", "sparse-indices"):
        values = _external("w") if place == "sparse-values" else helper.make_tensor("w", TensorProto.FLOAT, [2],
                                                                                      [1.0, 2.0])
        indices = _external("w_idx", (2,), TensorProto.INT64) if place == "sparse-indices" else \
            helper.make_tensor("w_idx", TensorProto.INT64, [2], [0, 3])
        sparse.append(helper.make_sparse_tensor(values, indices, [4]))
    elif place == "initializer":
        initializers.append(_external("w"))
    elif place == "constant-value":
        nodes.append(helper.make_node("Constant", [], ["c"], value=_external("c")))
    elif place == "constant-sparse-value":
        indices = helper.make_tensor("i", TensorProto.INT64, [1], [0])
        nodes.append(helper.make_node("Constant", [], ["c"], sparse_value=helper.make_sparse_tensor(
            _external("v", (1,)), indices, [4])))
    elif place == "subgraph":
        branch = helper.make_graph([helper.make_node("Constant", [], ["b"], value=_external("b"))], "branch", [],
                                   [helper.make_tensor_value_info("b", TensorProto.FLOAT, [4])])
        nodes.append(helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("k", TensorProto.BOOL, [],
                                                                                        [True])))
        nodes.append(helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=branch))
    elif place == "function-body":
        body = [helper.make_node("Constant", [], ["c"], value=_external("c")),
                helper.make_node("Identity", ["c"], ["out"])]
        functions.append(helper.make_function("custom", "Leak", [], ["out"], body,
                                              [helper.make_opsetid("", 17)]))
        nodes.append(helper.make_node("Leak", [], ["leaked"], domain="custom"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, list(SHAPE))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(SHAPE))],
                              initializers, sparse_initializer=sparse)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("custom", 1)] if functions else [])
    model = helper.make_model(graph, opset_imports=opsets, functions=functions)
    model.ir_version = 8
    if place == "training-info":
        training = model.training_info.add()
        training.initialization.CopyFrom(helper.make_graph(
            [helper.make_node("Constant", [], ["t"], value=_external("t"))], "init", [],
            [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])]))
    return bytes(model.SerializeToString())


EXTERNAL_PLACES = ["initializer", "sparse-values", "sparse-indices", "constant-value", "constant-sparse-value",
                   "subgraph", "function-body", "training-info"]


@pytest.mark.parametrize("place", EXTERNAL_PLACES)
def test_external_data_is_refused_wherever_a_tensor_names_it(place: str, tmp_path: Path) -> None:
    """The check used to miss sparse indices, a Constant's sparse_value and function bodies."""
    path = tmp_path / "m.onnx"
    path.write_bytes(_hostile_model(place))
    with pytest.raises(Refused, match="external data") as refused:
        check_upload(path, "onnx")
    assert refused.value.status == 415


def test_external_data_in_a_function_body_is_refused_by_the_agent() -> None:
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=60.0)) as server:
        status, answer = post(_address(server), _hostile_model("function-body"), TOKEN, meta())
        assert status == 415 and "external data" in answer["error"], answer
        assert "functions[0]" in answer["error"]


# ------------------------------------------------------------------------------------------------
# the private folder
# ------------------------------------------------------------------------------------------------


_HOLD_A_FOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgeprune.agent.server import AgentConfig, AgentServer
    server = AgentServer(AgentConfig(token=sys.argv[2], port=0, work_dir=Path(sys.argv[1])))
    (server.work_dir / "req-upload").mkdir()
    (server.work_dir / "req-upload" / "model.onnx").write_bytes(b"an upload")
    print(server.work_dir, flush=True)
    time.sleep(120)
""")


def _agent_holding_a_folder(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_A_FOLDER, str(parent), TOKEN], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_agents_folder_is_swept_when_the_next_one_starts(tmp_path: Path) -> None:
    killed, left_behind = _agent_holding_a_folder(tmp_path)
    running, in_use = _agent_holding_a_folder(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert (left_behind / "req-upload" / "model.onnx").exists()  # nothing ran on the way out
        server = AgentServer(AgentConfig(token=TOKEN, port=0, work_dir=tmp_path))
        try:
            assert not left_behind.exists()
            assert (in_use / "req-upload" / "model.onnx").exists()  # a running agent's folder stays
            assert server.work_dir.is_dir()
        finally:
            server.close()
        assert not server.work_dir.exists()
    finally:
        running.kill()
        running.wait(10)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signal")
def test_an_agent_whose_terminal_closes_removes_its_folder(tmp_path: Path) -> None:
    """SIGHUP (the SSH session the agent was started from ended) used to kill it with its uploads left behind."""
    code = ("import sys; from pathlib import Path; from edgeprune.agent.server import serve; "
            "serve(port=0, token=sys.argv[2], work_dir=Path(sys.argv[1]), "
            "on_ready=lambda s: print(s.work_dir, flush=True))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), TOKEN], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        folder = Path(proc.stdout.readline().strip())
        assert folder.is_dir()
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(30) == 0
        assert not folder.exists() and list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_that_dies_while_a_forked_child_holds_its_pipe_is_seen_dead(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    """No end of file comes while a process the worker forked keeps its reply pipe open: the agent still sees
    the death within a second, answers one line, and ends the child with the worker's process group."""
    from edgeprune.agent import worker as worker_module

    code = (
        "import json, os, sys, time\n"
        "out = os.fdopen(os.dup(1), 'w', buffering=1)\n"
        "out.write(json.dumps({'ready': True, 'runtimes': {}}) + '\\n')\n"
        "if os.fork() == 0:\n"
        "    open('child.pid', 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "    os._exit(0)\n"
        "sys.stdin.readline()\n"
        "os._exit(3)\n"
    )
    monkeypatch.setattr(worker_module, "_WORKER_CODE", code)
    runtime_worker = worker_module.RuntimeWorker(tmp_path)
    started = time.monotonic()
    with pytest.raises(worker_module.WorkerFailed, match="exit code 3"):
        runtime_worker.call({"op": "measure"}, timeout_s=30.0)
    assert time.monotonic() - started < 5.0
    status = Path(f"/proc/{(tmp_path / 'child.pid').read_text()}/status")
    for _ in range(40):  # SIGKILL is delivered at once; a zombie (no reaper in a container) counts as ended
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the forked child outlived the worker")

"""The on-device agent over loopback against this machine's CPU: auth, limits, payload checks, serialisation."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.agent.client import AgentClient, RemoteSession, parse_agent_url
from edgeprune.agent.protocol import (
    MEASURE_PATH,
    PROTOCOL_VERSION,
    REQUEST_HEADER,
    MeasureRequest,
    ProtocolError,
    fit_timing_to_budget,
    timing_spec_from_dict,
)
from edgeprune.agent.server import AgentConfig, AgentServer, WorkerFailed, is_loopback
from edgeprune.agent.throttle import TokenThrottle
from edgeprune.cli.main import main
from edgeprune.environment import device_state
from edgeprune.errors import DeviceUnavailableError, InputError
from edgeprune.runtimes.base import Artifact
from edgeprune.runtimes.onnx_export import INPUT_NAME, export_onnx
from edgeprune.target import Target, load_target
from edgeprune.timing import TimingSpec

TOKEN = "test-token-0123456789abcdef"
SPEC = TimingSpec(warmup_runs=2, min_runs=5, max_runs=200, min_seconds=0.05, max_cv=10.0, retries=0)
SHAPE = (1, 3, 16, 16)


class TinyNet(nn.Module):
    """conv -> relu -> pool -> linear: a few kB, measured in microseconds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _start(config: AgentConfig) -> tuple[AgentServer, threading.Thread]:
    server = AgentServer(config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent-models")


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="module")
def onnx_artifact(tiny: nn.Module, model_dir: Path) -> Artifact:
    path = export_onnx(tiny, torch.randn(*SHAPE), model_dir / "tiny.onnx")
    return Artifact(path, "onnx", INPUT_NAME, SHAPE)


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentServer]:
    server, thread = _start(AgentConfig(token=TOKEN, port=0, max_bytes=4 << 20, timeout_s=60.0,
                                        max_token_failures=1000, max_source_failures=1000,
                                        max_global_failures=1000))  # the wrong-token tests share it
    yield server
    server.shutdown()
    server.close()
    thread.join(5)


@pytest.fixture(scope="module")
def client(agent: AgentServer) -> AgentClient:
    return AgentClient(agent.url, TOKEN, timeout_s=60.0)


def _meta(fmt: str = "onnx", runtime: str = "onnxruntime", **changes: Any) -> str:
    request = MeasureRequest(format=fmt, runtime=runtime, device="CPU" if runtime == "openvino" else "cpu",
                             threads=1, precision="fp32", input_name=INPUT_NAME, input_shape=SHAPE, timing=SPEC)
    data = {**request.to_dict(), **changes}
    return json.dumps(data)


def _raw(url: str, method: str = "POST", path: str = MEASURE_PATH, body: bytes = b"",
         headers: dict[str, str] | None = None, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    """One hand-made HTTP request (so that the client's own checks don't get in the way)."""
    host, port = parse_agent_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body if method == "POST" else None, headers=all_headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _post_model(url: str, body: bytes, meta: str | None = None,
                token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {REQUEST_HEADER: meta if meta is not None else _meta()}
    return _raw(url, body=body, headers=headers, token=token)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _assert_sane(measurement_stats: Any) -> None:
    s = measurement_stats
    assert 0 < s.min_ms <= s.median_ms <= s.p90_ms < 1000
    assert s.runs >= SPEC.min_runs


# ------------------------------------------------------------------------------------------------
# the happy path
# ------------------------------------------------------------------------------------------------


def test_info_names_runtimes_and_limits(client: AgentClient) -> None:
    info = client.info()
    assert info["protocol"] == PROTOCOL_VERSION
    assert info["runtimes"]["onnxruntime"]["installed"] is True
    assert info["limits"]["max_bytes"] == 4 << 20
    assert "cpu" in info["machine"]


def test_good_onnx_is_measured_with_environment(client: AgentClient, onnx_artifact: Artifact) -> None:
    import onnxruntime

    result = client.measure(onnx_artifact, load_target("cpu"), SPEC)
    _assert_sane(result.stats)
    env = result.environment
    assert env["runtime"] == "onnxruntime"
    assert env["runtime_version"] == onnxruntime.__version__
    assert env["threads"] == 1 and env["precision"] == "fp32" and env["device"] == "cpu"
    assert "cpu" in env["machine"] and "cpu_governor" in env["machine"]
    assert result.timing.min_runs == SPEC.min_runs
    # the device's clocks and temperatures around the timing: this machine's (the agent runs here)
    assert result.device_state is not None and set(result.device_state) == {"before", "after"}
    assert set(result.device_state["before"]) == set(device_state())


def test_remote_session_times_through_the_agent(client: AgentClient, onnx_artifact: Artifact) -> None:
    session = RemoteSession(client, onnx_artifact, load_target("cpu"))
    stats = session.time({INPUT_NAME: np.zeros(SHAPE, np.float32)}, SPEC)
    _assert_sane(stats)
    assert session.last_measurement is not None and session.last_measurement.stats == stats
    with pytest.raises(NotImplementedError):
        session.run({INPUT_NAME: np.zeros(SHAPE, np.float32)})
    with pytest.raises(InputError, match="shape"):
        session.time({INPUT_NAME: np.zeros((1, 3, 8, 8), np.float32)}, SPEC)


def test_openvino_ir_via_the_client(client: AgentClient, onnx_artifact: Artifact, model_dir: Path) -> None:
    import openvino as ov  # the test environment installs every runtime: a missing one fails, never skips

    xml = model_dir / "tiny.xml"
    # Core.read_model, not convert_model: convert_model forks a telemetry process, which can deadlock once
    # JAX (loaded by the LiteRT tests) runs threads in this process.
    ov.save_model(ov.Core().read_model(str(onnx_artifact.path)), str(xml), compress_to_fp16=False)
    target = Target(name="ov", description="ov", runtime="openvino", device="CPU", threads=1)
    result = client.measure(Artifact(xml, "openvino", INPUT_NAME, SHAPE), target, SPEC)
    _assert_sane(result.stats)
    assert result.environment["runtime"] == "openvino"
    assert result.environment["runtime_version"] == ov.get_version()


def test_tflite_via_the_client(client: AgentClient, tiny: nn.Module, model_dir: Path) -> None:
    import litert_torch  # the test environment installs every runtime: a missing one fails, never skips
    path = model_dir / "tiny.tflite"
    litert_torch.convert(tiny, (torch.randn(*SHAPE),)).export(str(path))
    target = Target(name="tfl", description="tfl", runtime="litert")
    result = client.measure(Artifact(path, "tflite", INPUT_NAME, SHAPE), target, SPEC)
    _assert_sane(result.stats)
    assert result.environment["runtime"] == "litert"


@pytest.mark.parametrize("runtime", ["ncnn", pytest.param("executorch", marks=pytest.mark.full)])
def test_the_runtimes_of_the_wing_via_the_client(runtime: str, client: AgentClient, tiny: nn.Module,
                                                 model_dir: Path) -> None:
    """ncnn's two files go up as a zip and are unpacked under the agent's names; a .pte goes up as it is."""
    from edgeprune.runtimes import backend_of, facts_of

    target = load_target(facts_of(runtime).default_target)
    artifact = backend_of(runtime).export(tiny, torch.randn(*SHAPE), model_dir / f"tiny-{runtime}", target)
    result = client.measure(artifact, target, SPEC)
    _assert_sane(result.stats)
    assert result.environment["runtime"] == runtime


# ------------------------------------------------------------------------------------------------
# refusals
# ------------------------------------------------------------------------------------------------


def test_token_is_required(agent: AgentServer, onnx_artifact: Artifact) -> None:
    body = onnx_artifact.path.read_bytes()
    assert _post_model(agent.url, body, token=None)[0] == 401
    assert _post_model(agent.url, body, token="wrong-token")[0] == 401
    assert _post_model(agent.url, body, token=TOKEN + "x")[0] == 401
    assert _raw(agent.url, "GET", "/v1/info", token=None)[0] == 401
    status, answer = _raw(agent.url, "GET", "/v1/info", headers={"Authorization": f"Basic {TOKEN}"}, token=None)
    assert status == 401 and "token" in answer["error"]
    with pytest.raises(InputError, match="HTTP 401"):
        AgentClient(agent.url, "wrong-token").info()


def _raw_socket(url: str, request: bytes) -> bytes:
    host, port = parse_agent_url(url)
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("framing, expected", [
    (b"", b"Content-Length is required"),
    (b"Transfer-Encoding: chunked\r\n", b"chunked uploads are not accepted"),
])
def test_an_upload_without_a_length_is_refused_with_411(agent: AgentServer, framing: bytes, expected: bytes) -> None:
    head = (f"POST {MEASURE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"{REQUEST_HEADER}: {_meta()}\r\n").encode()
    answer = _raw_socket(agent.url, head + framing + b"\r\n" + (b"5\r\nhello\r\n0\r\n\r\n" if framing else b""))
    assert answer.startswith(b"HTTP/1.0 411") or answer.startswith(b"HTTP/1.1 411"), answer[:200]
    assert expected in answer


def test_a_client_that_keeps_sending_a_wrong_token_is_told_to_stop_but_the_right_token_still_works() -> None:
    server, thread = _start(AgentConfig(token=TOKEN, port=0, timeout_s=10.0))  # the default: 5 tries of one token
    try:
        assert [_raw(server.url, "GET", "/v1/info", token="stale-token")[0] for _ in range(5)] == [401] * 5
        status, answer = _raw(server.url, "GET", "/v1/info", token="stale-token")
        assert status == 429 and "refused too often" in answer["error"]
        assert _raw(server.url, "GET", "/v1/info", token=TOKEN)[0] == 200  # the right token is never refused
    finally:
        server.shutdown()
        server.close()
        thread.join(5)


def test_the_throttle_forgets_failures_after_its_window() -> None:
    now = [0.0]
    throttle = TokenThrottle(max_same_token=2, max_per_source=100, max_global=100, window_s=60.0,
                             clock=lambda: now[0])
    assert throttle.failed(b"a", "x") is None and throttle.failed(b"a", "x") is None
    assert throttle.failed(b"a", "x") is not None and throttle.failed(b"b", "x") is None
    now[0] = 61.0
    assert throttle.failed(b"a", "x") is None


def test_oversized_body_is_refused_with_413(onnx_artifact: Artifact) -> None:
    server, thread = _start(AgentConfig(token=TOKEN, port=0, max_bytes=1024, timeout_s=10.0))
    try:
        status, answer = _post_model(server.url, os.urandom(64 * 1024))
        assert status == 413 and "1024" in answer["error"]
        with pytest.raises(InputError, match="max-mb"):
            AgentClient(server.url, TOKEN).measure(onnx_artifact, load_target("cpu"), SPEC)
    finally:
        server.shutdown()
        server.close()
        thread.join(5)


def test_closing_the_agent_leaves_no_worker_process_behind() -> None:
    """The worker runs in a process group of its own, and closing the agent ends the whole group."""
    server, thread = _start(AgentConfig(token=TOKEN, port=0, timeout_s=30.0))
    try:
        assert server.runtimes()  # starts the worker
        proc = server.worker._proc
        assert proc is not None and os.getpgid(proc.pid) == proc.pid
        group = proc.pid
    finally:
        server.shutdown()
        server.close()
        thread.join(5)
    assert _group_gone(group, within_s=10.0)


def _group_gone(group: int, within_s: float) -> bool:
    """Whether process group ``group`` is empty within ``within_s`` (a killed member stays a zombie until init
    reaps it, so the group can outlive the kill by a moment)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_worker_that_died_leaves_nothing_when_it_is_replaced(agent: AgentServer, client: AgentClient,
                                                               onnx_artifact: Artifact) -> None:
    client.measure(onnx_artifact, load_target("cpu"), SPEC)
    with agent.measure_lock:
        proc = agent.worker._proc
        assert proc is not None
        group = proc.pid
        proc.kill()  # died without the agent stopping it
        proc.wait()
        agent.worker.ensure_started()  # the replacement ends what the old one left in its group
    assert _group_gone(group, within_s=10.0)


def test_connections_beyond_the_cap_are_answered_503_when_all_have_shown_the_token() -> None:
    server, thread = _start(AgentConfig(token=TOKEN, port=0, max_connections=1, timeout_s=10.0))
    try:
        host, port = parse_agent_url(server.url)
        with socket.create_connection((host, port)) as held:  # holds the only place, with the right token
            held.sendall((f"POST {MEASURE_PATH} HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n{REQUEST_HEADER}: "
                          f"{_meta()}\r\nContent-Length: 100000\r\n\r\n").encode())
            deadline = time.monotonic() + 5
            while server.connections.counts()[1] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.connections.counts() == (1, 1)
            time.sleep(0.3)  # it waits for its body: stalled, were it not proven
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/v1/info", headers={"Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            assert response.status == 503 and response.getheader("Retry-After") == "1"
            assert "busy" in json.loads(response.read())["error"]
            conn.close()
    finally:
        server.shutdown()
        server.close()
        thread.join(5)


_IR_XML = b'<?xml version="1.0"?><net name="m" version="11"><layers></layers><edges></edges></net>'
_ENTITY_XML = (b'<?xml version="1.0"?><!DOCTYPE net [<!ENTITY e "x"><!ENTITY e2 "&e;&e;&e;">]>'
               b'<net name="&e2;" version="11"><layers></layers></net>')
_PICKLED_DICT = b"(dp0\nVa\np1\nI1\ns."  # what pickle protocol 0 writes for {'a': 1}; never unpickled here
_TFLITE_GARBAGE = b"\x1c\x00\x00\x00TFL3" + b"\xff\xfe\xfd\xfc" * 256


def _duplicate_member_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        for name, data in (("model.xml", _IR_XML), ("model.xml", _IR_XML), ("model.bin", b"\0")):
            archive.writestr(name, data)
    return buffer.getvalue()


BAD_PAYLOADS: dict[str, tuple[str, str, bytes]] = {
    "random-bytes-as-onnx": ("onnx", "onnxruntime", bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8))),
    "text-as-onnx": ("onnx", "onnxruntime", b"hello, this is not a model\n" * 20),
    "pickle-as-onnx": ("onnx", "onnxruntime", _PICKLED_DICT),
    "pickle-as-tflite": ("tflite", "litert", _PICKLED_DICT),
    "tflite-header-then-garbage": ("tflite", "litert", _TFLITE_GARBAGE),
    "text-as-tflite": ("tflite", "litert", b"x" * 100),
    "not-a-zip-as-openvino": ("openvino", "openvino", b"<net></net>"),
    "zip-traversal": ("openvino", "openvino", _zip({"../model.xml": _IR_XML, "../../model.bin": b"\0" * 8})),
    "zip-in-folder": ("openvino", "openvino", _zip({"ir/model.xml": _IR_XML, "ir/model.bin": b"\0" * 8})),
    "zip-extra-member": ("openvino", "openvino",
                         _zip({"model.xml": _IR_XML, "model.bin": b"\0", "run.sh": b"rm -rf /"})),
    "zip-duplicate-member": ("openvino", "openvino", _duplicate_member_zip()),
    "xml-entity": ("openvino", "openvino", _zip({"model.xml": _ENTITY_XML, "model.bin": b"\0" * 8})),
    "xml-not-an-ir": ("openvino", "openvino", _zip({"model.xml": b"<html></html>", "model.bin": b"\0"})),
    "empty-body": ("onnx", "onnxruntime", b""),
    "text-as-ncnn": ("ncnn", "ncnn", b"x" * 100),
    "ncnn-zip-traversal": ("ncnn", "ncnn", _zip({"../model.ncnn.param": b"7767517\n1 1\n", "model.ncnn.bin": b"\0"})),
    "ncnn-param-not-ncnn": ("ncnn", "ncnn", _zip({"model.ncnn.param": b"<html></html>", "model.ncnn.bin": b"\0" * 8})),
    "text-as-pte": ("pte", "executorch", b"x" * 100),
    "pickle-as-pte": ("pte", "executorch", _PICKLED_DICT),
}


@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS))
def test_non_model_payload_is_refused_and_agent_keeps_serving(
    case: str, agent: AgentServer, client: AgentClient, onnx_artifact: Artifact
) -> None:
    fmt, runtime, body = BAD_PAYLOADS[case]
    status, answer = _post_model(agent.url, body, _meta(fmt, runtime))
    assert status == 415, answer
    assert answer["error"] and "\n" not in answer["error"] and "Traceback" not in answer["error"]
    assert str(agent.work_dir) not in answer["error"]
    _assert_sane(client.measure(onnx_artifact, load_target("cpu"), SPEC).stats)


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        (None, "missing"),
        ("{not json", "JSON"),
        (json.dumps({"protocol": "edgeprune-agent/0"}), "protocol"),
        (_meta(runtime="tensorrt"), "runtime"),
        (_meta(fmt="tflite"), "loads"),
        (_meta(input_shape=[1, -3, 16, 16]), "input_shape"),
        (_meta(input_shape=[65536, 65536]), "elements"),
        (_meta(threads=0), "threads"),
        (_meta(device="../../etc"), "device"),
        (_meta(timing={"min_runs": "many"}), "min_runs"),
        (_meta(extra_field=1), "unknown"),
    ],
)
def test_bad_metadata_is_refused_with_400(meta: str | None, needle: str, agent: AgentServer,
                                          onnx_artifact: Artifact) -> None:
    headers = {} if meta is None else {REQUEST_HEADER: meta}
    status, answer = _raw(agent.url, body=onnx_artifact.path.read_bytes(), headers=headers)
    assert status == 400 and needle in answer["error"], answer


def test_wrong_paths_and_methods(agent: AgentServer) -> None:
    assert _raw(agent.url, "GET", "/etc/passwd")[0] == 404
    assert _raw(agent.url, "GET", MEASURE_PATH)[0] == 405
    assert _raw(agent.url, "POST", "/v1/info", body=b"x")[0] == 405


def test_missing_runtime_names_the_pip_extra(agent: AgentServer, monkeypatch: pytest.MonkeyPatch,
                                             onnx_artifact: Artifact) -> None:
    runtimes = agent.runtimes()
    fake = {**runtimes, "openvino": {**runtimes["openvino"], "installed": False}}
    monkeypatch.setattr(agent.worker, "runtimes", fake)
    client = AgentClient(agent.url, TOKEN)
    with pytest.raises(InputError, match=r"edgeprune\[agent-openvino\]"):
        client.measure(onnx_artifact, Target(name="ov", description="ov", runtime="openvino", device="CPU"), SPEC)


def test_onnx_with_external_data_is_refused(agent: AgentServer, onnx_artifact: Artifact) -> None:
    import onnx

    model = onnx.load(str(onnx_artifact.path))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    status, answer = _post_model(agent.url, model.SerializeToString())
    assert status == 415 and "external data" in answer["error"], answer


def test_measurement_past_the_timeout_is_stopped(agent: AgentServer, client: AgentClient,
                                                  onnx_artifact: Artifact) -> None:
    request = MeasureRequest.from_header(_meta())
    job = {"op": "measure", "request": request.to_dict(), "path": str(onnx_artifact.path), "max_timing_s": 5.0}
    with agent.measure_lock:
        agent.worker.ensure_started()
        with pytest.raises(WorkerFailed, match="did not finish") as failed:
            agent.worker.call(job, timeout_s=0.001)
        assert failed.value.status == 504
    _assert_sane(client.measure(onnx_artifact, load_target("cpu"), SPEC).stats)


def test_agent_survives_its_worker_dying(agent: AgentServer, client: AgentClient, onnx_artifact: Artifact) -> None:
    client.measure(onnx_artifact, load_target("cpu"), SPEC)  # make sure a worker is running
    with agent.measure_lock:
        proc = agent.worker._proc
        assert proc is not None
        proc.kill()
        proc.wait()
    _assert_sane(client.measure(onnx_artifact, load_target("cpu"), SPEC).stats)


# ------------------------------------------------------------------------------------------------
# concurrency: bad requests refused, good ones measured, measurements never overlap
# ------------------------------------------------------------------------------------------------


def test_fifty_concurrent_clients(agent: AgentServer, onnx_artifact: Artifact) -> None:
    good = onnx_artifact.path.read_bytes()
    bad_kinds = [
        lambda: _post_model(agent.url, good, token=None),
        lambda: _post_model(agent.url, good, token="nope"),
        lambda: _post_model(agent.url, os.urandom(2048)),
        lambda: _post_model(agent.url, _TFLITE_GARBAGE, _meta("tflite", "litert")),
        lambda: _post_model(agent.url, _zip({"../model.xml": _IR_XML, "model.bin": b""}),
                            _meta("openvino", "openvino")),
    ]
    jobs: list[tuple[bool, Any]] = []
    for i in range(50):
        if i % 2 == 0:
            jobs.append((True, lambda: _post_model(agent.url, good)))
        else:
            jobs.append((False, bad_kinds[(i // 2) % len(bad_kinds)]))
    before = len(agent.measurements)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda job: (job[0], job[1]()), jobs))
    for is_good, (status, answer) in results:
        if is_good:
            assert status == 200, answer
            assert answer["stats"]["runs"] >= SPEC.min_runs and answer["stats"]["median_ms"] > 0
        else:
            assert 400 <= status < 500, answer
    intervals = sorted(iv for iv in list(agent.measurements)[before:] if iv[0] >= started)
    assert len(intervals) == 25
    for (_, end), (next_start, _) in zip(intervals, intervals[1:]):
        assert end <= next_start, "two measurements overlapped"


# ------------------------------------------------------------------------------------------------
# client errors, protocol helpers, CLI
# ------------------------------------------------------------------------------------------------


def test_client_reports_connection_refused_and_timeouts(onnx_artifact: Artifact) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    with pytest.raises(DeviceUnavailableError, match="connection refused") as refused:
        AgentClient(f"127.0.0.1:{free_port}", TOKEN, timeout_s=5).info()
    assert refused.value.exit_code == 4 and not isinstance(refused.value, InputError)  # a lost device, not bad input
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(DeviceUnavailableError, match="did not answer"):
            AgentClient(url, TOKEN, timeout_s=0.3).info()


def test_parse_agent_url() -> None:
    assert parse_agent_url("http://pi.local:9000") == ("pi.local", 9000)
    assert parse_agent_url("pi.local:9000/") == ("pi.local", 9000)
    assert parse_agent_url("http://[::1]:9000") == ("::1", 9000)
    for bad in ("https://pi:9000", "http://user:pw@pi:9000", "http://pi:9000/x", "http://pi:notaport", ""):
        with pytest.raises(InputError):
            parse_agent_url(bad)


def test_timing_spec_is_clamped() -> None:
    spec = timing_spec_from_dict({"min_runs": 10**9, "min_seconds": 1e9, "retries": 99, "max_runs": 1})
    assert spec.min_runs == 100_000 and spec.min_seconds == 60.0 and spec.retries == 5
    assert spec.max_runs >= spec.min_runs
    with pytest.raises(ProtocolError):
        timing_spec_from_dict({"warmup_runs": True})
    # 10 ms per run, 1 s budget: every pass together fits in the budget
    fitted = fit_timing_to_budget(TimingSpec(warmup_runs=50, min_runs=500, max_runs=5000, min_seconds=5.0, retries=2),
                                  0.01, 1.0)
    assert (1 + fitted.retries) * (fitted.warmup_runs + fitted.max_runs) * 0.01 <= 1.0 + 1e-9
    assert fitted.min_runs <= fitted.max_runs and fitted.min_seconds <= 1.0
    slow = fit_timing_to_budget(TimingSpec(), 30.0, 10.0)
    assert slow.min_runs == slow.max_runs == 1 and slow.retries == 0 and slow.warmup_runs == 0


def test_cli_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPRUNE_AGENT_TOKEN", raising=False)
    assert main(["agent", "--port", "0"]) == 2


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("pi.local")

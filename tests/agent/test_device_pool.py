"""A pool of devices (``--device URL1,URL2``): real agents on loopback share a profile, and agents whose
environment differs are refused in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_server import running_agent

from edgeprune.agent.client import AgentClient
from edgeprune.agent.devices import DeviceSpec, check_same_environment, device_environment, parse_devices
from edgeprune.agent.server import AgentConfig, AgentServer
from edgeprune.cli.main import main
from edgeprune.errors import DeviceUnavailableError, InputError
from edgeprune.latency.profile_model import ProfileConfig, profile_model
from edgeprune.latency.table import LatencyTable

TOKEN = "device-pool-token-0123456789abcdef"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def two_agents(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AgentServer, AgentServer]]:
    monkeypatch.setenv("EDGEPRUNE_AGENT_TOKEN", TOKEN)
    config = AgentConfig(token=TOKEN, port=0, timeout_s=120.0)
    with running_agent(config) as first, running_agent(config) as second:
        yield first, second


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def test_a_two_agent_pool_shares_a_profile_and_records_who_measured_what(
        two_agents: tuple[AgentServer, AgentServer], tmp_path: Path) -> None:
    first, second = two_agents
    config = ProfileConfig(model="demo", target="cpu", table_dir=tmp_path, max_points=2, calibration_samples=4,
                           device=f"{first.url},{second.url}", device_token=TOKEN)
    _, summary = profile_model(config)
    shares = summary.device_shares
    assert set(shares) == {first.url, second.url}
    assert all(count > 0 for count in shares.values()), shares
    for server in (first, second):  # each counted once; a device also timed the calibration's reference once
        assert shares[server.url] <= len(server.measurements) <= shares[server.url] + 1
    assert _overlap(list(first.measurements), list(second.measurements))  # the two devices measured at once
    table = LatencyTable.load(summary.table_path)
    probes = table.device_shares()
    assert set(probes) == {first.url, second.url} and sum(probes.values()) == summary.probes_measured == len(table)
    (calibration,) = table.calibrations.values()
    assert len(calibration.measured_by) == 4 and set(calibration.measured_by) <= {first.url, second.url}


@pytest.mark.full
def test_profile_prints_each_devices_share(two_agents: tuple[AgentServer, AgentServer], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two_agents
    devices = tmp_path / "devices.toml"
    devices.write_text(f'[[device]]\nurl = "{first.url}"\n[[device]]\nurl = "{second.url}"\ntoken = "{TOKEN}"\n',
                       encoding="utf-8")
    code = main(["profile", "--model", "demo", "--max-points", "2", "--calibration-samples", "2",
                 "--table-dir", str(tmp_path / "tables"), "--device", str(devices)])
    out = capsys.readouterr().out
    assert code == 0
    line = next(line for line in out.splitlines() if "measurements per device" in line)
    assert first.url in line and second.url in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def agent_on_other_cores(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """A real ``edgeprune agent`` process allowed a different number of cores than this one (its real
    scheduling setting, as ``taskset`` gives); yields its URL and that number."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs a machine with two cores and CPU affinity")
    ours = os.sched_getaffinity(0)
    cores = {min(ours)} if len(ours) > 1 else set(range(os.cpu_count() or 2))
    port = _free_port()
    env = {**os.environ, "EDGEPRUNE_AGENT_TOKEN": TOKEN,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    process = subprocess.Popen([sys.executable, "-m", "edgeprune", "agent", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: os.sched_setaffinity(0, cores))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                AgentClient(url, TOKEN, timeout_s=30).info()
                break
            except DeviceUnavailableError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the agent process did not start") from None
                time.sleep(0.3)
        monkeypatch.setenv("EDGEPRUNE_AGENT_TOKEN", TOKEN)
        yield url, len(cores)
    finally:
        process.terminate()
        process.wait(30)


def test_a_pool_of_devices_whose_environment_differs_is_refused_in_one_line(
        agent_on_other_cores: tuple[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    url, cores = agent_on_other_cores
    ours = len(os.sched_getaffinity(0))
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=60.0)) as local:
        code = main(["profile", "--model", "demo", "--device", f"{local.url},{url}"])
        assert len(local.measurements) == 0  # refused before anything was measured
    err = capsys.readouterr().err.strip()  # the in-process agent's own log lines come first
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and "Traceback" not in err and err.endswith(line), err
    assert f"error: the devices differ in usable_cores: {local.url} has {ours}, {url} has {cores};" in line


def test_a_runtime_version_that_differs_is_named(two_agents: tuple[AgentServer, AgentServer]) -> None:
    first, second = two_agents
    infos = [AgentClient(server.url, TOKEN).info() for server in two_agents]
    envs = [(server.url, device_environment(info, "onnxruntime")) for server, info in zip(two_agents, infos)]
    check_same_environment(envs)  # two agents of one machine: the same
    version = envs[0][1]["onnxruntime_version"]
    assert version
    envs[1][1]["onnxruntime_version"] = "0.0.1"  # as an agent with another ONNX Runtime would report
    with pytest.raises(InputError, match=f"differ in onnxruntime_version: {first.url} has '{version}', "
                                         f"{second.url} has '0.0.1'"):
        check_same_environment(envs)


def test_device_lists_and_files_are_parsed(tmp_path: Path) -> None:
    assert parse_devices("http://a:1", "t") == [DeviceSpec("http://a:1", "t")]
    assert parse_devices(" a:1 ,b:2", None) == [DeviceSpec("a:1"), DeviceSpec("b:2")]
    path = tmp_path / "devices.toml"
    path.write_text('[[device]]\nurl = "a:1"\n[[device]]\nurl = "b:2"\ntoken = "own"\n', encoding="utf-8")
    assert parse_devices(str(path), "t") == [DeviceSpec("a:1", "t"), DeviceSpec("b:2", "own")]
    for text, needle in (("a:1,a:1", "twice"), ("a:1,", "empty entry"), (str(tmp_path / "none.toml"), "cannot read")):
        with pytest.raises(InputError, match=needle):
            parse_devices(text, None)
    path.write_text('[[device]]\nhost = "a"\n', encoding="utf-8")
    with pytest.raises(InputError, match="no url"):
        parse_devices(str(path), None)

"""`fit` and `profile` pointed at an on-device agent (here: a real agent on loopback, this machine's CPU)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from budget_check import assert_meets_budget_share

import edgeprune
from edgeprune.agent.server import AgentConfig, AgentServer
from edgeprune.latency.profile_model import ProfileConfig, profile_model
from edgeprune.train.default_weights import load_model

TOKEN = "test-token-for-loopback-agent-0123456789"


@pytest.fixture(scope="module")
def agent_url() -> Iterator[str]:
    server = AgentServer(AgentConfig(token=TOKEN, port=0, max_bytes=64 << 20, timeout_s=120.0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.close()


def test_fit_measures_every_candidate_on_the_agent(agent_url: str, tmp_path: Path) -> None:
    """The default precision through an agent: ``auto``, with the quantized model measured on the device."""
    result = edgeprune.fit("demo", target="cpu", budget="70%", out=tmp_path / "out", device=agent_url,
                           device_token=TOKEN, max_rounds=8)
    report = result.report
    assert report["method"]["precision_choice"]["precision"] in ("int8", "fp32")  # auto decided, on the agent's timing
    quantized = [r for r in report["search"]["rounds"] if r["kind"] == "quantized"]
    assert quantized and quantized[0]["measured"]
    for side in ("baseline", "final"):
        assert report[side]["latency"]["source"] == "measured-agent"
        assert report[side]["latency"]["machine"]  # the agent's machine, reported by the agent
    assert report["environment"]["measured_on"]["source"] == "measured-agent"
    assert_meets_budget_share(load_model("demo").model, report, tmp_path / "out", tmp_path)  # loopback: this CPU
    assert "through an edgeprune agent" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.full
def test_a_predicted_target_becomes_measured_with_an_agent(agent_url: str, tmp_path: Path) -> None:
    # An ONNX Runtime target declared as unreachable: with --device it is measured on the agent instead.
    target = tmp_path / "board.toml"
    target.write_text('name = "board"\nruntime = "onnxruntime"\nlatency_source = "predicted-profile"\n'
                      'profile = "rpi4"\nchannel_alignment = 8\n')
    _, summary = profile_model(ProfileConfig(model="cifar-resnet8", target=str(target), table_dir=tmp_path / "t",
                                             calibration_samples=3, device=agent_url, device_token=TOKEN))
    assert summary.probes_measured > 0 and summary.table_path.is_file()


def test_a_wrong_token_is_one_clear_error(agent_url: str, tmp_path: Path) -> None:
    with pytest.raises(edgeprune.EdgepruneError, match="(?i)token|401|unauthor"):
        edgeprune.fit("demo", target="cpu", budget="70%", out=tmp_path / "o", device=agent_url,
                      device_token="wrong-token-wrong-token-wrong", precision="fp32")


@pytest.mark.full
def test_a_device_lost_mid_run_keeps_the_state_and_resume_finishes(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeprune.agent.client import AgentClient
    from edgeprune.errors import DeviceUnavailableError
    from edgeprune.fit.resume import STATE_DIR

    first = AgentServer(AgentConfig(token=TOKEN, port=0, timeout_s=120.0))
    port = first.server_address[1]
    thread = threading.Thread(target=first.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    real_measure = AgentClient._measure
    calls = {"n": 0}

    def measure_then_lose_the_device(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:  # the tunnel drops: the agent is gone before the fourth measurement
            first.shutdown()
            first.close()
        return real_measure(self, *args, **kwargs)

    monkeypatch.setattr(AgentClient, "_measure", measure_then_lose_the_device)
    options = dict(target="cpu", budget="70%", out=tmp_path / "out", device=f"http://127.0.0.1:{port}",
                   device_token=TOKEN, max_rounds=8, precision="fp32")
    with pytest.raises(DeviceUnavailableError, match="--resume") as lost:
        edgeprune.fit("demo", **options)
    assert lost.value.exit_code == 4
    assert (tmp_path / "out" / STATE_DIR / "journal.json").is_file()  # the measurements are kept

    monkeypatch.setattr(AgentClient, "_measure", real_measure)
    second = AgentServer(AgentConfig(token=TOKEN, port=port, timeout_s=120.0))  # the device is back
    thread = threading.Thread(target=second.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        result = edgeprune.fit("demo", resume=True, **options)
    finally:
        second.shutdown()
        second.close()
    assert result.report["resume"]["measurements_replayed"] >= 1
    assert_meets_budget_share(load_model("demo").model, result.report, tmp_path / "out", tmp_path)


@pytest.mark.full
def test_runtime_auto_through_an_agent_times_each_runtime_on_the_device(agent_url: str, tmp_path: Path) -> None:
    """A Pi-like target listing two runtimes, measured through the agent: each file is timed there in turn (three
    rounds), the choice and its table are in the report, and the search then measures in the chosen runtime."""
    target = tmp_path / "board.toml"
    target.write_text('name = "board"\nruntime = "onnxruntime"\nruntimes = ["onnxruntime", "ncnn"]\n'
                      'latency_source = "predicted-profile"\nprofile = "rpi4"\nchannel_alignment = 8\n')
    result = edgeprune.fit("demo", target=str(target), budget="70%", out=tmp_path / "out", device=agent_url,
                           device_token=TOKEN, precision="fp32", allocation="uniform", max_rounds=3,
                           eval_images=64, calib_images=64)
    choice = result.report["runtime_choice"]
    assert choice["how"] == f"measured on {agent_url}"
    measured = {t["runtime"]: t for t in choice["trials"] if t["ratio"] is not None}
    assert set(measured) == {"onnxruntime", "ncnn"}, choice["trials"]
    assert measured["onnxruntime"]["ratio"] == 1.0  # the reference, against itself round by round
    assert result.report["target"]["runtime"] == choice["runtime"]
    assert result.report["final"]["latency"]["source"] == "measured-agent"

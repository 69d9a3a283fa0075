"""``bench --device`` and ``validate --device``: model files timed on an agent over loopback, paired there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from agent_server import running_agent
from model_helpers import conv_stack

from edgeprune.agent.server import AgentConfig, AgentServer
from edgeprune.cli.main import main
from edgeprune.runtimes.onnx_export import export_onnx

TOKEN = "bench-device-token-0123456789abcdef"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bench-device")
    torch.manual_seed(0)
    small = export_onnx(conv_stack(0, 32), torch.rand(1, 3, 48, 48), folder / "small.onnx")
    large = export_onnx(conv_stack(4, 32), torch.rand(1, 3, 48, 48), folder / "large.onnx")
    return small, large


@pytest.fixture()
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentServer]:
    monkeypatch.setenv("EDGEPRUNE_AGENT_TOKEN", TOKEN)
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=60.0)) as server:
        yield server


def test_bench_on_the_device_pairs_every_artifact_with_the_first_there(
        agent: AgentServer, pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    small, large = pair
    code = main(["bench", str(large), str(small), "--device", agent.url, "--threads", "1", "--seconds", "0.3",
                 "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measured_on"].startswith(f"the agent at {agent.url}")
    reference, other = data["rows"]
    assert reference["paired"] is None and reference["top_kernels"] is None
    assert other["rounds"] >= 6 and len(other["paired"]["candidate_round_ms"]) == other["rounds"]
    assert other["ratio"] < 0.5  # the small model skips four 32-channel convolutions
    assert other["ratio_low"] <= other["ratio"] <= other["ratio_high"]
    assert len(agent.references) == 1  # the first file was kept on the device as the reference


def test_validate_on_the_device_measures_there_and_pairs_with_the_reference(
        agent: AgentServer, pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    small, large = pair
    code = main(["validate", str(small), "--reference", str(large), "--device", agent.url, "--timing-seconds", "0.3",
                 "--images", "2", "--json"])
    out = capsys.readouterr().out
    latency = json.loads(out)["latency"]
    assert latency["source"] == "measured-agent" and agent.url in latency["measured_on"]
    assert latency["median_ms"] > 0 and latency["runs_count"] > 0
    assert latency["paired_with_reference"]["ratio"] < 0.5
    assert code in (0, 3)  # parity of two different models fails; the latency is what this test is about


def test_a_device_that_is_not_there_is_one_line(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPRUNE_AGENT_TOKEN", TOKEN)
    code = main(["bench", str(pair[0]), "--device", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 4 and "Traceback" not in err and "127.0.0.1:9" in err  # a lost device, not bad input

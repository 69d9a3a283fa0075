"""Paired measurements through the agent on loopback: the reference is kept, candidates are timed against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from agent_server import running_agent
from model_helpers import conv_stack

from edgeprune.agent.client import AgentClient, AgentRefusedError
from edgeprune.agent.pairing import fit_pairing_to_budget
from edgeprune.agent.server import AgentConfig, AgentServer
from edgeprune.paired import PairingSpec
from edgeprune.runtimes import get_backend
from edgeprune.runtimes.base import Artifact
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

TOKEN = "pairing-test-token-0123456789abcdef"
SPEC = PairingSpec(rounds=6, max_rounds=12, extra_rounds=6, min_round_seconds=0.01, min_runs=3, warmup_runs=2)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Artifact]:
    folder = tmp_path_factory.mktemp("pairing")
    target = load_target("cpu")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    large = get_backend(target).export(conv_stack(4, 16), x, folder / "large.onnx", target)
    small = get_backend(target).export(conv_stack(0, 16), x, folder / "small.onnx", target)
    return large, small


@pytest.fixture()
def agent() -> Iterator[AgentServer]:
    with running_agent(AgentConfig(token=TOKEN, port=0, timeout_s=60.0)) as server:
        yield server


def test_a_candidate_is_timed_against_the_kept_reference(agent: AgentServer,
                                                         artifacts: tuple[Artifact, Artifact]) -> None:
    large, small = artifacts
    client = AgentClient(agent.url, TOKEN)
    first = client.measure_paired(large, small, load_target("cpu"), SPEC)
    assert len(agent.references) == 1
    paired = first.paired
    assert paired is not None and paired.summary.rounds >= 6
    assert paired.ratio < 0.7  # the small model skips four 16-channel convolutions
    assert paired.summary.low <= paired.ratio <= paired.summary.high
    again = client.measure_paired(large, large, load_target("cpu"), SPEC)  # the same file: ratio about 1
    assert again.paired is not None and 0.8 < again.paired.ratio < 1.25
    assert len(agent.references) == 1  # the reference was uploaded once


def test_an_agent_that_forgot_the_reference_gets_it_again(agent: AgentServer,
                                                           artifacts: tuple[Artifact, Artifact]) -> None:
    large, small = artifacts
    client = AgentClient(agent.url, TOKEN)
    client.measure_paired(large, small, load_target("cpu"), SPEC)
    agent.references.clear()  # as after a restart
    result = client.measure_paired(large, small, load_target("cpu"), SPEC)
    assert result.paired is not None and len(agent.references) == 1


def test_an_unknown_reference_is_refused_with_409(agent: AgentServer, artifacts: tuple[Artifact, Artifact]) -> None:
    client = AgentClient(agent.url, TOKEN)
    with pytest.raises(AgentRefusedError, match="unknown reference") as caught:
        client._measure(artifacts[1], load_target("cpu"), TimingSpec(min_runs=5, min_seconds=0.05), "float32",
                        pair_with="0" * 64)
    assert caught.value.status == 409


def test_a_schedule_is_shortened_to_the_agent_ceiling() -> None:
    spec = PairingSpec(rounds=20, max_rounds=60, extra_rounds=20, min_round_seconds=0.05, min_runs=5, warmup_runs=10)
    fitted = fit_pairing_to_budget(spec, seconds_per_call=0.1, budget_s=10.0)  # a 100 ms model: 1 s per round
    assert fitted.max_rounds <= 9 and fitted.rounds <= fitted.max_rounds and fitted.rounds >= 2
    assert fit_pairing_to_budget(spec, seconds_per_call=0.001, budget_s=60.0) == spec  # fits as asked


@pytest.mark.full
def test_fit_through_the_agent_is_paired(agent: AgentServer, tmp_path: Path) -> None:
    import edgeprune

    result = edgeprune.fit("demo", target="cpu", budget="70%", out=tmp_path / "out", device=agent.url,
                           device_token=TOKEN, precision="fp32")
    report = result.report
    assert report["measurement"]["paired"] is True
    assert "speedup_interval" in report
    assert all("paired" in r for r in report["search"]["rounds"] if r["kind"] != "baseline")
    # one device, as before; each reading names it, and its share is every reading
    assert all(r.get("device") == agent.url for r in report["search"]["rounds"] if r["measured"])
    assert list(report["environment"]["measured_on"]["devices"]) == [agent.url]

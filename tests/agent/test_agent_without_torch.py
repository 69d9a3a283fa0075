"""The agent runs on a device that has only a runtime: ``edgeprune agent`` serves a measurement with torch absent.

The agent (and its measurement worker, a process of its own) run with a ``sitecustomize`` that makes every
import of torch and the other workstation packages fail, and writes down each attempt; the test exports a
model here, measures it through the agent on loopback, and checks that nothing even tried to import them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from agent_server import agent_process
from model_helpers import conv_stack

from edgeprune.agent.client import AgentClient
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

TOKEN = "torch-free-agent-token-0123456789"
#: what a device install lacks: the framework, the converters, and what only the workstation side uses
BLOCKED = ("torch", "torchvision", "torch_pruning", "litert_torch", "onnxscript", "matplotlib", "sklearn",
           "safetensors", "PIL")
REPO_ROOT = Path(__file__).resolve().parents[2]

SITECUSTOMIZE = textwrap.dedent('''
    import importlib.abc, os, sys
    BLOCKED = {blocked!r}
    LOG = os.environ["EDGEPRUNE_TEST_BLOCK_LOG"]

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                with open(LOG, "a", encoding="utf-8") as f:
                    f.write(name + "\\n")
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, _Block())
''')


@pytest.fixture()
def torch_free_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=BLOCKED), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["EDGEPRUNE_TEST_BLOCK_LOG"] = str(tmp_path / "blocked.log")
    env["EDGEPRUNE_AGENT_TOKEN"] = TOKEN
    return env


def _blocked(env: dict[str, str]) -> list[str]:
    log = Path(env["EDGEPRUNE_TEST_BLOCK_LOG"])
    return log.read_text(encoding="utf-8").split() if log.exists() else []


def test_the_block_works(torch_free_env: dict[str, str]) -> None:
    """The harness itself: with the block in place, importing torch fails and is logged."""
    proc = subprocess.run([sys.executable, "-c", "import torch"], env=torch_free_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr
    assert _blocked(torch_free_env) == ["torch"]


def test_importing_the_agent_needs_no_torch(torch_free_env: dict[str, str]) -> None:
    code = "import edgeprune.agent, edgeprune.agent.server, edgeprune.agent.client, edgeprune.cli.main; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], env=torch_free_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert _blocked(torch_free_env) == []


def test_workstation_verbs_say_what_to_install(torch_free_env: dict[str, str], tmp_path: Path) -> None:
    """Without torch, ``targets`` still works and ``fit`` is one line naming the extra, exit code 2."""
    run = [sys.executable, "-m", "edgeprune"]
    targets = subprocess.run(run + ["targets"], env=torch_free_env, capture_output=True, text=True, timeout=60)
    assert targets.returncode == 0, targets.stderr
    assert "rpi4" in targets.stdout
    fit = subprocess.run(run + ["fit", "--budget", "60%", "--out", str(tmp_path / "out")], env=torch_free_env,
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert fit.returncode == 2
    lines = fit.stderr.strip().splitlines()
    assert len(lines) == 1 and "edgeprune[workstation]" in lines[0], fit.stderr
    assert "Traceback" not in fit.stderr


@pytest.fixture()
def torch_free_agent(torch_free_env: dict[str, str]) -> Iterator[str]:
    with agent_process([sys.executable, "-m", "edgeprune", "agent"], TOKEN, torch_free_env,
                       "the torch-free agent") as url:
        yield url


def test_the_cli_agent_serves_a_measurement_without_torch(torch_free_agent: str, torch_free_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    target = load_target("cpu")
    torch.manual_seed(0)
    artifact = get_backend(target).export(conv_stack(0, 8), torch.randn(1, 3, 16, 16), tmp_path / "tiny.onnx", target)
    client = AgentClient(torch_free_agent, TOKEN)
    info = client.info()
    assert info["runtimes"]["onnxruntime"]["installed"]
    spec = TimingSpec(warmup_runs=2, min_runs=20, min_seconds=0.1, retries=0)
    stats = client.measure(artifact, target, spec).stats
    assert stats.runs >= 20
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert _blocked(torch_free_env) == [], "the agent or its worker tried to import a workstation package"

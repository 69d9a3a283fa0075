"""The install commands of docs/install.md and the README, run as written in fresh virtual environments.

* On a device: ``make wheel`` here, then the README's Pi commands as written (a venv, ``pip install
  "$(ls edgeprune-*.whl)[agent-tflite,agent-ncnn]"``) in a folder holding the wheel; the venv has no torch, and its
  ``edgeprune agent`` serves a measurement of a LiteRT file made here.
* From a checkout: ``pip install '.[agent-onnxruntime]'`` (not editable) gives a working ``edgeprune targets``.

Each creates a venv and installs from the package index pip is configured with (a minute or two): the full tier.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from agent_server import agent_process

from edgeprune.agent.client import AgentClient
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fresh-venv-agent-token-0123456789"
pytestmark = pytest.mark.full


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path / "bin"


def _pip(bin_dir: Path, *args: str, cwd: Path | None = None) -> None:
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *args], capture_output=True,
                          text=True, timeout=1200, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make wheel`` into a temporary dist folder (the checkout's own dist/ is left alone)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(["make", "-s", "wheel", f"PYTHON={sys.executable}"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "MAKEFLAGS": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    built = sorted((REPO_ROOT / "dist").glob("edgeprune-*-py3-none-any.whl"), key=lambda p: p.stat().st_mtime)
    assert built, "make wheel wrote no wheel into dist/"
    return Path(shutil.copy(built[-1], dist))


def readme_pi_install() -> list[str]:
    """The README's commands that install the agent on the Pi (its block with ``agent-tflite``), up to the
    token and the agent itself, which the test sets up with a free port."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = text.split("```")[1::2]
    block = next(b for b in blocks if "pip install" in b and "agent-tflite" in b)
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith(("export ", "edgeprune "))]


@pytest.fixture(scope="module")
def device_agent(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The README's Pi install, run as written in a folder holding the wheel (as after its ``scp``): a fresh venv
    with only the wheel and its agent extras (LiteRT, ncnn), then the agent started from it."""
    tmp_path = tmp_path_factory.mktemp("device")
    pi = tmp_path / "pi-home"
    pi.mkdir()
    shutil.copy(wheel, pi)
    commands = readme_pi_install()
    assert any(c.startswith("pip install") for c in commands), commands
    done = subprocess.run(["bash", "-euc", " && ".join(commands)], cwd=pi, capture_output=True, text=True,
                          timeout=1200, env={**os.environ, "PYTHONPATH": "", "VIRTUAL_ENV": ""})
    assert done.returncode == 0, (commands, done.stderr[-3000:])
    bin_dir = pi / "edgeprune-agent" / "bin"
    assert (bin_dir / "edgeprune").is_file(), commands
    check = subprocess.run([str(bin_dir / "python"), "-c", "import torch"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": ""})
    assert check.returncode != 0, "the device install pulled in torch"
    env = {**os.environ, "EDGEPRUNE_AGENT_TOKEN": TOKEN, "PYTHONPATH": ""}
    with agent_process([str(bin_dir / "edgeprune"), "agent"], TOKEN, env, "the agent installed from the wheel",
                       cwd=tmp_path) as url:
        yield url, bin_dir


@pytest.mark.parametrize("target_name", ["cpu-tflite", "cpu-ncnn"])
def test_the_wheel_with_its_agent_extras_serves_measurements_without_torch(device_agent: tuple[str, Path],
                                                                           target_name: str, tmp_path: Path) -> None:
    url, _ = device_agent
    target = load_target(target_name)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()
    artifact = get_backend(target).export(model, torch.randn(1, 3, 16, 16), tmp_path / "tiny", target)
    client = AgentClient(url, TOKEN)
    info = client.info()
    assert info["runtimes"][target.runtime]["installed"], info["runtimes"]
    stats = client.measure(artifact, target, TimingSpec(warmup_runs=2, min_runs=20, min_seconds=0.1, retries=0)).stats
    assert stats.runs >= 20 and 0 < stats.median_ms


def test_a_checkout_installs_with_pip_and_its_cli_runs(tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path / "checkout")
    _pip(bin_dir, ".[agent-onnxruntime]", cwd=REPO_ROOT)
    done = subprocess.run([str(bin_dir / "edgeprune"), "targets"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0 and "rpi4" in done.stdout, done.stderr[-2000:]

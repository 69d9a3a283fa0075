"""Fuzzing with hypothesis (bounded and derandomised, so CI sees the same examples every run).

(a) ``edgeprune fit`` command lines built from random flags and values end in an exit code or argparse's
    SystemExit(2), never an uncaught exception or a traceback. Every command line ends with ``--out``
    naming an existing *file*: fit refuses that before loading any model or data, so no example can start
    real work, while everything checked before it (budget, options, target, runtime, importance) is fuzzed.
(a') The same with a fresh ``--out`` and valid files among the choices (a state dict, an .npz), so the
    model, weights, data and shape checks are fuzzed too; a command whose inputs all pass stops where the
    search would start (the test puts a stop there), so no example runs a search.
(b) Truncated and bit-flipped weights files (torch state dict and safetensors of a small model) either load
    or raise an :class:`~edgeprune.errors.EdgepruneError`.
(c) Truncated and bit-flipped ONNX files: the agent's check (:func:`check_upload`) passes them or refuses them
    (:class:`Refused`, its HTTP 4xx error); a file it passes is then loaded by the ONNX Runtime backend,
    which succeeds or raises an EdgepruneError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_in_process import run_cli_in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch import nn

from edgeprune.agent.checks import Refused, check_upload
from edgeprune.errors import EdgepruneError
from edgeprune.models.weights import load_weights
from edgeprune.runtimes.base import Artifact
from edgeprune.runtimes.onnx_export import INPUT_NAME, export_onnx
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.target import load_target

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
#: command lines are cheap (each stops at a bad input), so more of them
FUZZ_CLI = settings(FUZZ, max_examples=100)


class SmallNet(nn.Module):
    """conv-bn-relu → pool → linear: a few tensors of different shapes and dtypes (incl. BN's int64 counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


# -- (a) command lines ----------------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_NUMBER = st.one_of(st.integers(-5, 500).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str))
_BUDGET = st.one_of(
    st.sampled_from(["20ms", "1.5 ms", "0.02s", "500us", "60%", "20", "-3ms", "fast", "0ms", "0%", "150%",
                     "1e400ms", "nan%", "inf ms", "ms", "%", "", " ", "1,5ms", "2h"]),
    st.builds(lambda n, u: f"{n}{u}", _NUMBER, st.sampled_from(["ms", "s", "us", "µs", "%", "", " ms", "MS"])),
    _TEXT,
)
_NAME = st.one_of(st.sampled_from(["cpu", "cpu-openvino", "cpu-tflite", "rpi4", "rpi44", "intel-npu", "CPU",
                                   "l1", "bn", "taylor", "nisp", "lasso", "L1", "l2", "", "demo",
                                   "cifar-resnet20", "cifar-resnet21", "torchvision:resnet18", "a.b:c",
                                   "../etc/passwd", "x.toml"]), _TEXT)
_SHAPE = st.one_of(st.lists(st.integers(-2, 64).map(str), min_size=3, max_size=3).map(",".join),
                   st.lists(st.integers(1, 64).map(str), max_size=4).map(",".join), _TEXT)
_FLOATS = st.lists(st.floats(-2, 2, allow_nan=False).map(lambda v: f"{v:.3g}"), min_size=1, max_size=4).map(",".join)
_PATH_NAMES = ["nope.pt", "empty.pt", "junk.pt", "data.csv", "empty_dir", "empty.npz", ""]


def _ints(low: int, high: int) -> st.SearchStrategy[str]:
    """Mostly integers argparse accepts (so the example reaches edgeprune's own checks), sometimes junk."""
    return st.one_of(st.integers(low, high).map(str), st.integers(low, high).map(str), _NUMBER)


def _flag_values(files: Path) -> dict[str, st.SearchStrategy[str]]:
    paths = st.one_of(st.sampled_from([str(files / n) for n in _PATH_NAMES]), _TEXT)
    return {
        "--target": _NAME, "--importance": _NAME, "--model": _NAME,
        "--input-shape": _SHAPE, "--mean": _FLOATS, "--std": _FLOATS, "--num-classes": _ints(0, 1000),
        "--weights": paths, "--data": paths, "--train-data": paths, "--table-dir": paths,
        "--allocation": st.sampled_from(["latency", "uniform", "latency", "uniform", "greedy"]),
        "--finetune-epochs": _ints(0, 3), "--finetune-lr": st.floats(-1, 1).map(str), "--calib-images": _ints(0, 64),
        "--eval-images": _ints(0, 64), "--max-rounds": _ints(0, 20), "--search-headroom": st.floats(-1, 1).map(str),
        "--seed": _ints(-3, 3),
    }


_SWITCHES = ["--force", "--json", "--reconstruct", "--no-bn-recalibrate"]


@st.composite
def fit_command(draw: st.DrawFn, files: Path) -> list[str]:
    """``fit`` with a random budget and a random subset of flags, ending with ``--out`` naming an existing file."""
    values = _flag_values(files)
    flags = draw(st.lists(st.sampled_from(sorted(values)), max_size=5, unique=True))
    argv = ["fit"]
    if draw(st.integers(0, 9)):  # one example in ten omits the required --budget
        argv.append(f"--budget={draw(_BUDGET)}")  # '=' so that values starting with '-' stay values
    for flag in flags:
        argv.append(f"{flag}={draw(values[flag])}")
    argv += draw(st.lists(st.sampled_from(_SWITCHES), max_size=2, unique=True))
    return ["-q", *argv, "--out", str(files / "data.csv")]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bad files the fuzzed command lines may name."""
    d = tmp_path_factory.mktemp("fuzz-files")
    (d / "empty.pt").write_bytes(b"")
    (d / "junk.pt").write_bytes(bytes(range(256)) * 4)
    (d / "data.csv").write_text("x,y\n")
    (d / "empty_dir").mkdir()
    return d


def test_fuzzed_fit_command_lines_never_raise(files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    @FUZZ_CLI
    @given(argv=fit_command(files))
    def run(argv: list[str]) -> None:
        done = run_cli_in_process(*argv)  # argparse: a flag it cannot parse ends in exit 2 (usage + one line)
        code, text = done.returncode, done.stderr
        assert "Traceback" not in text
        assert "internal error" not in text, text
        assert code == 2, (argv, code, text)  # the --out file alone makes every command a bad input
        last = [line for line in text.split("\n") if line.strip()][-1]  # not splitlines(): values may hold \x1e
        assert last.startswith("edgeprune") and "error:" in last, text

    run()
    assert not (tmp_path / "cache").exists(), "a fuzzed command got as far as the model or latency cache"


class _ReachedSearch(EdgepruneError):
    """Raised where the search would start: every input of the fuzzed command was accepted."""

    exit_code = 99


class _StopBeforeSearch:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise _ReachedSearch("inputs accepted; the fuzz test stops before the search")


@pytest.fixture(scope="module")
def good_files(files: Path) -> Path:
    """Valid inputs beside the bad ones: CIFAR ResNet-8 weights and a small labelled .npz."""
    import numpy as np

    from edgeprune.models.cifar_resnet import CifarResNet

    torch.save(CifarResNet(8, 10).state_dict(), files / "r8.pt")
    rng = np.random.default_rng(0)
    np.savez(files / "good.npz", x=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 10, 12))
    return files


@st.composite
def input_command(draw: st.DrawFn, files: Path, out: Path) -> list[str]:
    """``fit`` on a fuzzed model/weights/data/shape combination, mostly valid, with a fresh ``--out``."""
    bad = st.sampled_from([str(files / n) for n in _PATH_NAMES])
    # mostly the right file in each slot (so that about a third of the examples pass every check), else any file
    weights = st.one_of(st.just(str(files / "r8.pt")), st.just(str(files / "r8.pt")), st.just(str(files / "r8.pt")),
                        st.just(str(files / "good.npz")), bad)
    data_file = st.one_of(st.just(str(files / "good.npz")), st.just(str(files / "good.npz")),
                          st.just(str(files / "good.npz")), st.just(str(files / "r8.pt")), bad)
    paths = st.one_of(data_file, bad)
    model = draw(st.sampled_from(["cifar-resnet8"] * 6 + ["cifar-resnet21", "a.b:c", "torchvision:nosuch", ""]))
    argv = ["-q", "fit", "--budget=60%", "--precision=fp32", f"--model={model}", f"--weights={draw(weights)}", f"--data={draw(data_file)}"]
    extra = {"--input-shape": _SHAPE, "--num-classes": _ints(0, 20), "--mean": _FLOATS, "--std": _FLOATS,
             "--train-data": paths, "--calib-data": paths, "--calib-images": _ints(0, 64),
             "--eval-images": _ints(0, 64)}
    for flag in draw(st.lists(st.sampled_from(sorted(extra)), max_size=2, unique=True)):
        argv.append(f"{flag}={draw(extra[flag])}")
    return [*argv, "--out", str(out)]


def test_fuzzed_model_and_data_inputs_never_raise(good_files: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeprune.fit import pipeline as fit_pipeline

    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fit_pipeline, "FitRun", _StopBeforeSearch)
    outcomes: dict[int, int] = {}

    @settings(FUZZ, max_examples=40)
    @given(argv=input_command(good_files, tmp_path / "out"), data=st.data())
    def run(argv: list[str], data: st.DataObject) -> None:
        done = run_cli_in_process(*argv, "--force")
        code, text = done.returncode, done.stderr
        assert "Traceback" not in text and "internal error" not in text, (argv, text)
        assert code in (2, 99), (argv, code, text)
        outcomes[code] = outcomes.get(code, 0) + 1

    run()
    assert outcomes.get(99, 0) >= 1 and outcomes.get(2, 0) >= 1, outcomes  # both valid and bad inputs were seen


# -- (b) weights files ----------------------------------------------------------------------------------

@st.composite
def damage(draw: st.DrawFn, size: int) -> tuple[int | None, list[tuple[int, int]]]:
    """A truncation length (or None) and bit flips (offset, bit) within ``size`` bytes."""
    truncate = draw(st.one_of(st.none(), st.integers(0, size - 1)))
    flips = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 7)), max_size=8))
    if truncate is None and not flips:
        flips = [(draw(st.integers(0, size - 1)), draw(st.integers(0, 7)))]
    return truncate, flips


def damaged(data: bytes, truncate: int | None, flips: list[tuple[int, int]]) -> bytes:
    """``data`` with the bits flipped, then cut to ``truncate`` bytes."""
    out = bytearray(data)
    for offset, bit in flips:
        out[offset] ^= 1 << bit
    return bytes(out if truncate is None else out[:truncate])


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of a SmallNet state dict saved with torch.save and with safetensors."""
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    state = SmallNet().state_dict()
    torch.save(state, d / "w.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(d / "w.safetensors"))
    return {".pt": (d / "w.pt").read_bytes(), ".safetensors": (d / "w.safetensors").read_bytes()}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_damaged_weights_load_or_raise_edgeprune_error(suffix: str, weight_files: dict[str, bytes],
                                                       tmp_path: Path) -> None:
    original = weight_files[suffix]
    path = tmp_path / f"weights{suffix}"
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(change=damage(len(original)))
    def run(change: tuple[int | None, list[tuple[int, int]]]) -> None:
        path.write_bytes(damaged(original, *change))
        try:
            load_weights(SmallNet(), path)
            outcomes["loaded"] = outcomes.get("loaded", 0) + 1
        except EdgepruneError as exc:
            assert str(exc) and "\n" not in str(exc).strip(), "an error is one line"
            outcomes["refused"] = outcomes.get("refused", 0) + 1

    run()
    assert outcomes.get("refused", 0) > 0, "no damaged file was refused: the fuzzing did not reach the checks"


# -- (c) ONNX files -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small exported ONNX model."""
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    path = export_onnx(SmallNet().eval(), torch.randn(1, 3, 8, 8), d / "small.onnx")
    return Path(path).read_bytes()


def test_damaged_onnx_is_refused_or_loads(onnx_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    backend, target = OnnxRuntimeBackend(), load_target("cpu")
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(change=damage(len(onnx_bytes)))
    def run(change: tuple[int | None, list[tuple[int, int]]]) -> None:
        path.write_bytes(damaged(onnx_bytes, *change))
        try:
            check_upload(path, "onnx")
        except Refused as exc:
            assert 400 <= exc.status < 500 and exc.message
            outcomes["refused by the check"] = outcomes.get("refused by the check", 0) + 1
            return
        try:  # what the agent's worker does with a file the check passed
            backend.load(Artifact(path, "onnx", INPUT_NAME, (1, 3, 8, 8)), target)
            outcomes["loaded"] = outcomes.get("loaded", 0) + 1
        except EdgepruneError:
            outcomes["refused by the runtime"] = outcomes.get("refused by the runtime", 0) + 1

    run()
    assert outcomes.get("refused by the check", 0) > 0, outcomes

"""Every bad input gets one clear line on stderr and exit code 2, never a traceback (issue 6, items 2 and 5).

One table, one test: each row is a command line (``{d}`` = a folder of bad files built once, ``{out}`` = a
fresh output folder), the way the error is reported (by edgeprune, or by argparse for flags it cannot
parse), and a regex the error line must match. The CLI runs in-process through ``main(argv)``; two rows
also run as a real ``python -m edgeprune`` process to prove there is no traceback at the process level.

A row whose bad input slipped through would start a real (short) fit: every fit row asks for
``--allocation uniform`` and a generous budget, so a regression fails the test in seconds, not minutes.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from edgeprune.cli.main import main
from edgeprune.fit.outputs import RESULT_FILES
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.prune.plan import SlimPlan, module_shapes

#: the fit command every fit row starts from; rows replace one option with a bad value
FIT = ("fit", "--budget", "1000ms", "--allocation", "uniform", "--model", "cifar-resnet20",
       "--weights", "{d}/r20.pt", "--data", "{d}/ok.npz", "--out", "{out}")


def fit(**changes: str) -> tuple[str, ...]:
    """The base fit command with ``--option value`` replaced or added (``input_shape`` → ``--input-shape``)."""
    argv = list(FIT)
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return tuple(argv)


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        argv: the command line, with ``{d}`` and ``{out}`` placeholders.
        match: regex searched in the error line's text after ``edgeprune: error:``.
        by_argparse: the flag itself cannot be parsed; argparse prints its usage and one
            ``edgeprune VERB: error:`` line and exits with SystemExit(2).
        hide_module: a module made unimportable (``sys.modules[name] = None``) to simulate an absent
            optional runtime.
    """

    argv: tuple[str, ...]
    match: str
    by_argparse: bool = False
    hide_module: str | None = None


CASES: dict[str, Case] = {
    # -- model and weights ------------------------------------------------------------------------
    "weights-missing": Case(fit(weights="{d}/nope.pt"), r"weights file not found: .*nope\.pt"),
    "weights-empty": Case(fit(weights="{d}/empty.pt"), r"weights file is empty: .*empty\.pt"),
    "weights-corrupt": Case(fit(weights="{d}/junk.pt"), r"cannot read weights file .*junk\.pt: corrupt"),
    "weights-corrupt-safetensors": Case(fit(weights="{d}/junk.safetensors"),
                                        r"cannot read safetensors file .*junk\.safetensors"),
    "weights-pickled-module": Case(fit(weights="{d}/whole.pt"),
                                   r"pickled Python objects .*torch\.save\(model\.state_dict\(\), "),
    "weights-other-architecture": Case(fit(model="cifar-resnet56"),
                                       r"do not fit the model: tensor 'layer1\.3\.conv1\.weight' and \d+ more missing"),
    "weights-wrong-shape": Case(fit(weights="{d}/wrong_shape.safetensors"),
                                r"tensor 'linear\.weight' has shape \(10, 32\), the model expects \(10, 64\)"),
    "weights-wrong-class-count": Case(fit(num_classes="100"),
                                      r"tensor 'linear\.weight' has shape \(10, 64\), the model expects \(100, 64\)"),
    "model-unknown": Case(fit(model="resnet56"), r"unknown model 'resnet56'\. Did you mean 'cifar-resnet56'\?"),
    "model-bad-depth": Case(fit(model="cifar-resnet21"), r"depth must be 6n\+2 .* got 21"),
    "model-unknown-torchvision": Case(fit(model="torchvision:resnet5"),
                                      r"unknown torchvision model 'resnet5'\. Did you mean"),
    "model-factory-not-importable": Case(fit(model="nosuch_pkg.mod:build"),
                                         r"cannot import module 'nosuch_pkg\.mod' .*ModuleNotFoundError"),
    # -- data -------------------------------------------------------------------------------------
    "data-missing": Case(fit(data="{d}/nope.npz"), r"data not found: .*nope\.npz"),
    "data-dir-not-images": Case(fit(data="{d}/not_images"), r"not_images contains no images"),
    "data-dir-fake-image": Case(fit(data="{d}/fake_images"), r"cannot read image .*a\.png"),
    "data-dir-empty": Case(fit(data="{d}/empty_dir"), r"empty_dir contains no images"),
    "data-wrong-file-type": Case(fit(data="{d}/data.csv"), r"expected a directory of class folders or an \.npz"),
    "data-npz-empty": Case(fit(data="{d}/empty.npz"), r"empty\.npz has no array 'x'"),
    "data-npz-without-x": Case(fit(data="{d}/no_x.npz"), r"no_x\.npz has no array 'x'"),
    "data-npz-corrupt": Case(fit(data="{d}/junk.npz"), r"cannot read .*junk\.npz as an \.npz archive"),
    "data-npz-float-pixels": Case(fit(data="{d}/float.npz"), r"'x' must be uint8 pixels, got float32"),
    "data-npz-label-count": Case(fit(data="{d}/short_y.npz"), r"5 labels for 20 images"),
    "data-npz-zero-images": Case(fit(data="{d}/zero.npz"), r"the dataset is empty"),
    # issue 36: hostile headers are refused before anything is decoded or allocated
    "data-png-bomb": Case(fit(data="{d}/bomb"), r"refusing image .*huge\.png: Image size \(400000000 pixels\) "
                          r"exceeds limit"),
    "data-npz-huge-header": Case(fit(data="{d}/huge.npz"), r"huge\.npz declares 286\.1 GiB of arrays \('x': "
                                 r"\(300000, 1000, 1024\) uint8\), over the (memory available|cap)"),
    "data-class-count": Case(fit(data="{d}/labels_to_99.npz"),
                             r"has 100 classes but model 'cifar-resnet20' outputs 10"),
    # the demo model is trained on first use (about a minute): the class count must be refused before that
    "data-class-count-demo": Case(("fit", "--budget", "1000ms", "--data", "{d}/labels_to_99.npz", "--out", "{out}"),
                                  r"has 100 classes but model 'demo' outputs 10"),
    "data-required": Case(("fit", "--budget", "1000ms", "--model", "cifar-resnet20", "--out", "{out}"),
                          r"--data is required"),
    # issue 37: class folders named by integers are class indices; --class-map says the others
    "data-dir-index-beyond-classes": Case(fit(data="{d}/index_folders"), r"index_folders: class folder '10' is read "
                                          r"as a class index .* but the model has 10 classes \(0\.\.9\)"),
    "class-map-missing": Case(fit(data="{d}/named_folders", class_map="{d}/nope.txt"),
                              r"class map not found: .*nope\.txt"),
    "class-map-not-json": Case(fit(data="{d}/named_folders", class_map="{d}/bad_map.json"),
                               r"class map .*bad_map\.json is not valid JSON \(line 1: "),
    "class-map-folder-missing": Case(fit(data="{d}/named_folders", class_map="{d}/cat_map.txt"),
                                     r"named_folders: class folder 'dog' is not in the class map .*cat_map\.txt"),
    "class-map-without-folders": Case(fit(class_map="{d}/cat_map.txt"),
                                      r"--class-map maps class folders to class indices, but .*ok\.npz has no class "
                                      r"folders"),
    # -- input shape and preprocessing ------------------------------------------------------------
    "shape-two-values": Case(fit(input_shape="3,7"), r"argument --input-shape: expected three positive sizes",
                             by_argparse=True),
    "shape-not-numbers": Case(fit(input_shape="a,b,c"), r"expected a shape like 3,224,224", by_argparse=True),
    "shape-wrong-channels": Case(fit(input_shape="1,32,32"),
                                 r"model 'cifar-resnet20' does not accept input of shape \(1, 32, 32\)"),
    "mean-wrong-length": Case(fit(mean="0.5,0.5"), r"mean and std need 3 value"),
    "std-zero": Case(fit(std="0,1,1"), r"std values must be positive"),
    # -- target -----------------------------------------------------------------------------------
    "target-unknown": Case(fit(target="rpi44"),
                           r"unknown target 'rpi44'\. Did you mean 'rpi4'\? Known: cpu, cpu-executorch, .*rpi5\."),
    "target-file-missing": Case(fit(target="{d}/nope.toml"), r"target file not found"),
    "target-file-not-toml": Case(fit(target="{d}/bad.toml"), r"bad\.toml is not valid TOML"),
    "target-file-bad-key": Case(fit(target="{d}/bad_key.toml"), r"unknown key\(s\) speed"),
    # -- budget -----------------------------------------------------------------------------------
    "budget-no-unit": Case(fit(budget="20"), r"budget '20' has no unit; write it with one, e.g\. '20ms'"),
    "budget-negative": Case(fit(budget="-3ms"), r"cannot read budget '-3ms'"),  # as --budget=-3ms, see argv_of
    "budget-word": Case(fit(budget="fast"), r"cannot read budget 'fast': expected a positive latency with a unit"),
    "budget-zero": Case(fit(budget="0ms"), r"budget '0ms' must be greater than zero"),
    "budget-zero-percent": Case(fit(budget="0%"), r"budget '0%' must be a percentage in \(0, 100\]"),
    "budget-over-100-percent": Case(fit(budget="150%"), r"budget '150%' must be a percentage in \(0, 100\]"),
    "budget-overflow": Case(fit(budget="1e400ms"), r"budget '1e400ms' is too large to be a latency"),
    "budget-missing": Case(FIT[:1] + FIT[3:], r"a fit needs --budget \(latency\), or --size-budget or --sparsity "
                           r"for a size-only fit"),
    # -- options ----------------------------------------------------------------------------------
    "importance-unknown": Case(fit(importance="tayler"),
                               r"unknown importance criterion 'tayler'\. Did you mean 'taylor'\?"),
    "importance-short-name": Case(fit(importance="l2"), r"unknown importance criterion 'l2'\. Did you mean 'l1'\?"),
    "allocation-unknown": Case(fit(allocation="greedy"), r"argument --allocation: invalid choice", by_argparse=True),
    "calib-images-zero": Case(fit(calib_images="0"), r"expected a positive integer, got '0'", by_argparse=True),
    "augment-unknown": Case(fit(augment="crop,flop"),
                            r"unknown augmentation 'flop'\. Did you mean 'flip'\?"),
    "headroom-too-large": Case(fit(search_headroom="0.9"), r"--search-headroom must be in \[0, 0\.5\)"),
    "finetune-without-labels": Case(fit(finetune_epochs="1", data="{d}/unlabelled.npz"),
                                    r"--finetune-epochs needs training data: pass --train-data"),
    # -- output directory -------------------------------------------------------------------------
    "out-is-a-file": Case(fit(out="{d}/data.csv"), r"output path .*data\.csv exists and is not a directory"),
    "out-under-a-file": Case(fit(out="{d}/data.csv/sub"), r"cannot write to output directory .*data\.csv/sub"),
    "out-holds-results": Case(fit(out="{d}/done"), r"already holds results \(report\.json\); pass --force"),
    # -- missing optional runtimes (the package is made unimportable: nothing is mocked) ------------
    "runtime-openvino-missing": Case(fit(target="cpu-openvino"),
                                     r"OpenVINO runtime is not installed; install it with: "
                                     r"pip install 'edgeprune\[openvino\]'", hide_module="openvino"),
    "runtime-litert-missing": Case(fit(target="cpu-tflite"),
                                   r"LiteRT runtime is not installed; install it with: pip install 'edgeprune\[tflite\]'",
                                   hide_module="ai_edge_litert"),
    # -- profile ----------------------------------------------------------------------------------
    "profile-target-unknown": Case(("profile", "--target", "cpux"), r"unknown target 'cpux'\. Did you mean 'cpu'\?"),
    "profile-model-unknown": Case(("profile", "--model", "foo"), r"unknown model 'foo'\."),
    "profile-shape-wrong": Case(("profile", "--model", "cifar-resnet20", "--input-shape", "1,32,32"),
                                r"does not accept input of shape \(1, 32, 32\)"),
    "profile-calibration-samples": Case(("profile", "--calibration-samples", "1"),
                                        r"--calibration-samples must be at least 2"),
    "profile-runtime-missing": Case(("profile", "--model", "cifar-resnet20", "--target", "cpu-openvino"),
                                    r"pip install 'edgeprune\[openvino\]'", hide_module="openvino"),
    # -- targets ----------------------------------------------------------------------------------
    "targets-unknown-flag": Case(("targets", "--all"), r"unrecognized arguments: --all", by_argparse=True),
    "targets-extra-argument": Case(("targets", "rpi4"), r"unrecognized arguments: rpi4", by_argparse=True),
    "verb-unknown": Case(("prune",), r"argument VERB: invalid choice: 'prune'", by_argparse=True),
    # -- validate ---------------------------------------------------------------------------------
    "validate-missing-artifact": Case(("validate", "{d}/nope.onnx", "--timing-seconds", "0"),
                                      r"artifact not found: .*nope\.onnx"),
    "validate-corrupt-onnx": Case(("validate", "{d}/junk.onnx", "--timing-seconds", "0"),
                                  r"junk\.onnx is not a valid ONNX model"),
    "validate-not-a-model": Case(("validate", "{d}/r20.pt"), r"not a model file edgeprune can run"),
    "validate-target-unknown": Case(("validate", "{d}/junk.onnx", "--target", "rpi44"), r"Did you mean 'rpi4'\?"),
    "validate-min-accuracy": Case(("validate", "{d}/junk.onnx", "--min-accuracy", "2"),
                                  r"expected a fraction between 0 and 1", by_argparse=True),
    # -- export -----------------------------------------------------------------------------------
    "export-from-missing": Case(("export", "--from", "{d}/nope", "--out", "{out}"), r"nope not found"),
    "export-from-not-fit-output": Case(("export", "--from", "{d}/empty_dir", "--out", "{out}"),
                                       r"plan\.json not found: is .*empty_dir an edgeprune output folder\?"),
    "export-plan-invalid": Case(("export", "--from", "{d}/plan.json", "--out", "{out}"), r"not an edgeprune plan"),
    "export-plan-negative-dim": Case(("export", "--from", "{d}/negative_plan", "--out", "{out}"),
                                     r"negative_plan/plan\.json: invalid plan field 'input_shape\[2\]': expected a "
                                     r"positive integer, got -32"),
    "export-format-unknown": Case(("export", "--from", "{d}/empty_dir", "--out", "{out}", "--export", "coreml"),
                                  r"unknown export format 'coreml'", by_argparse=True),
    # -- report -----------------------------------------------------------------------------------
    "report-dir-missing": Case(("report", "{d}/nope"), r"directory .*nope does not exist"),
    "report-no-report": Case(("report", "{d}/empty_dir"), r"no report\.json in"),
    "report-corrupt-json": Case(("report", "{d}/bad_report"), r"report\.json is not valid JSON"),
}

#: rows also run as a real process (python -m edgeprune)
SUBPROCESS_CASES = ("weights-pickled-module", "shape-two-values")



@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of bad (and a few good) inputs, built once for the whole table."""
    d = tmp_path_factory.mktemp("bad-inputs")
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    r20 = CifarResNet(20, 10)
    torch.save(r20.state_dict(), d / "r20.pt")
    torch.save(r20, d / "whole.pt")  # a whole pickled nn.Module
    wrong = {k: v.clone() for k, v in r20.state_dict().items()}
    wrong["linear.weight"] = torch.zeros(10, 32)
    save_file(wrong, str(d / "wrong_shape.safetensors"))
    (d / "empty.pt").write_bytes(b"")
    (d / "junk.pt").write_bytes(rng.bytes(4096))
    (d / "junk.safetensors").write_bytes(rng.bytes(4096))
    (d / "junk.npz").write_bytes(rng.bytes(4096))
    (d / "junk.onnx").write_bytes(rng.bytes(4096))
    pixels = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    np.savez(d / "ok.npz", x=pixels, y=np.arange(20) % 10)
    np.savez(d / "empty.npz")
    np.savez(d / "no_x.npz", y=np.arange(20) % 10)
    np.savez(d / "float.npz", x=pixels.astype(np.float32), y=np.arange(20) % 10)
    np.savez(d / "short_y.npz", x=pixels, y=np.arange(5))
    np.savez(d / "zero.npz", x=np.zeros((0, 32, 32, 3), np.uint8), y=np.zeros(0, np.int64))
    np.savez(d / "labels_to_99.npz", x=pixels, y=np.linspace(0, 99, 20).astype(np.int64))
    np.savez(d / "unlabelled.npz", x=pixels)
    (d / "not_images").mkdir()
    (d / "not_images" / "notes.txt").write_text("not an image")
    (d / "fake_images" / "cat").mkdir(parents=True)
    (d / "fake_images" / "cat" / "a.png").write_text("not a png")
    (d / "empty_dir").mkdir()
    (d / "data.csv").write_text("x,y\n1,2\n")
    (d / "bad.toml").write_text("name = \n")
    (d / "bad_key.toml").write_text('name = "t"\nruntime = "onnxruntime"\nspeed = 3\n')
    (d / "done").mkdir()
    (d / "done" / "report.json").write_text("{}")
    (d / "plan.json").write_text("{}")
    _write_hostile_files(d, r20)
    (d / "bad_report").mkdir()
    (d / "bad_report" / "report.json").write_text("{not json")
    _write_class_folders(d, pixels)
    return d


def _write_class_folders(d: Path, pixels: np.ndarray) -> None:
    """Class folders named by integers (one beyond a 10-class model) and by words, and class maps for the words."""
    from PIL import Image

    for folder in ("index_folders/3", "index_folders/10", "named_folders/cat", "named_folders/dog"):
        (d / folder).mkdir(parents=True)
        Image.fromarray(pixels[0]).save(d / folder / "a.png")
    (d / "bad_map.json").write_text('{"cat": 1,')
    (d / "cat_map.txt").write_text("cat 1\n")


def _write_hostile_files(d: Path, model: torch.nn.Module) -> None:
    """Issue 36's hostile files: a PNG header claiming 20000 x 20000 pixels, an .npz whose header declares
    286 GiB, and an output folder whose plan.json records a negative input dimension."""
    import struct
    import zipfile
    import zlib

    from PIL import Image

    (d / "bomb" / "cat").mkdir(parents=True)
    Image.new("RGB", (1, 1)).save(d / "bomb" / "cat" / "huge.png")
    png = bytearray((d / "bomb" / "cat" / "huge.png").read_bytes())
    png[16:24] = struct.pack(">II", 20000, 20000)  # IHDR width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))  # the chunk's CRC over type and data
    (d / "bomb" / "cat" / "huge.png").write_bytes(bytes(png))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (300000, 1000, 1024)})
    with zipfile.ZipFile(d / "huge.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue())  # the header alone: no pixel follows
    plan = SlimPlan("cifar-resnet20", {"num_classes": 10}, [1, 3, -32, 32], None, [], module_shapes(model)).to_dict()
    (d / "negative_plan").mkdir()
    (d / "negative_plan" / "plan.json").write_text(json.dumps(plan))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(d / "negative_plan" / "model.safetensors"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty edgeprune cache (demo weights, latency tables) per test, and the test folder as cwd."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    yield cache


def argv_of(case: Case, files: Path, out: Path) -> list[str]:
    """The row's command line with its placeholders filled, ``-q`` first (warnings and errors only).

    A budget starting with '-' is passed as ``--budget=VALUE``, as a user must (argparse would read it as a flag).
    """
    argv = [a.replace("{d}", str(files)).replace("{out}", str(out)) for a in case.argv]
    if "--budget" in argv and argv[argv.index("--budget") + 1].startswith("-"):
        i = argv.index("--budget")
        argv[i : i + 2] = [f"--budget={argv[i + 1]}"]
    return ["-q", *argv]


def assert_one_error_line(stderr: str, case: Case) -> None:
    """stderr holds one error line matching ``case.match`` (after argparse's usage text for argparse rows)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    if case.by_argparse:
        assert lines[0].startswith("usage: edgeprune"), stderr
        error = lines[-1]
        assert re.match(r"^edgeprune( \w+)?: error: ", error), stderr
        assert sum("error:" in line for line in lines) == 1, stderr
    else:
        assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
        error = lines[0]
        assert error.startswith("edgeprune: error: "), stderr
    assert re.search(case.match, error), f"{case.match!r} not in {error!r}"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_line_and_exit_code_2(
    name: str, bad_files: Path, tmp_path: Path, isolated_cache: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[name]
    if case.hide_module:
        monkeypatch.setitem(sys.modules, case.hide_module, None)  # `import X` now fails: X is not installed
    out = tmp_path / "out"
    argv = argv_of(case, bad_files, out)
    capsys.readouterr()
    if case.by_argparse:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        code = stop.value.code
    else:
        code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, f"exit code {code}; stderr:\n{captured.err}"
    assert_one_error_line(captured.err, case)
    assert captured.out == "", "a refused command prints nothing on stdout"
    assert not any((out / f).exists() for f in RESULT_FILES), "a refused run left result files behind"
    assert not isolated_cache.exists() or not any(isolated_cache.rglob("*.safetensors")), (
        "the demo model was trained although the input was refused"
    )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_output_parent_gives_one_line(
    bad_files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        case = Case(fit(out=str(locked / "out")), r"cannot write to output directory .*locked/out")
        capsys.readouterr()
        code = main(argv_of(case, bad_files, tmp_path / "unused"))
        assert code == 2
        assert_one_error_line(capsys.readouterr().err, case)
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process_has_no_traceback(name: str, bad_files: Path, tmp_path: Path) -> None:
    case = CASES[name]
    env = {**os.environ, "EDGEPRUNE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "edgeprune", *argv_of(case, bad_files, tmp_path / "out")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert_one_error_line(proc.stderr, case)


def test_a_refused_run_can_be_repeated_with_the_same_out(bad_files: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A refused run leaves nothing in --out that changes the next run's answer (no stale run state)."""
    case = CASES["data-dir-not-images"]
    argv = argv_of(case, bad_files, tmp_path / "out")
    errors = []
    for _ in range(2):
        capsys.readouterr()
        assert main(argv) == 2
        errors.append(capsys.readouterr().err.strip())
    assert errors[0] == errors[1], errors
    assert re.search(case.match, errors[1])

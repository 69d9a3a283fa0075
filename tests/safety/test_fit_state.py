"""A damaged or unwritable fit state is one line naming the file and what to do, exit code 2 (issue 36).

The resume journal (valid JSON of the wrong shape), the resume folder and ``--table-dir`` when they cannot be
written: each is refused by the CLI in one ``edgeprune: error:`` line, never an internal error or a
traceback, and ``--table-dir`` before the long work starts. The CLI runs in-process through ``main(argv)``
on cifar-resnet20 with 20 random images, so each row takes a second or two.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgeprune.cli.main import main
from edgeprune.fit.outputs import RESULT_FILES
from edgeprune.fit.resume import DONE_PREFIX, JOURNAL_FORMAT, STATE_DIR
from edgeprune.models.cifar_resnet import CifarResNet

resume_module = importlib.import_module("edgeprune.fit.resume")  # edgeprune.fit is also the fit function's name
FINGERPRINT = "test-fingerprint"
GOOD_READING = {"median_ms": 1.0, "p90_ms": 1.1, "mean_ms": 1.0, "min_ms": 0.9, "cv": 0.01, "runs": 50,
                "noisy": False}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fit-state")
    torch.manual_seed(0)
    torch.save(CifarResNet(20, 10).state_dict(), d / "r20.pt")
    rng = np.random.default_rng(0)
    np.savez(d / "ok.npz", x=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y=np.arange(20) % 10)
    (d / "a_file").write_text("not a folder")
    return d


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty cache, the test folder as cwd, and a fixed journal fingerprint (so a planted journal matches)."""
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resume_module, "config_fingerprint", lambda config: FINGERPRINT)
    yield


def fit_argv(files: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "fit", "--budget", "1000ms", "--allocation", "uniform", "--model", "cifar-resnet20",
            "--weights", str(files / "r20.pt"), "--data", str(files / "ok.npz"), "--out", str(out), *extra]


def one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    captured = capsys.readouterr()
    assert code == 2, f"exit code {code}; stderr:\n{captured.err}"
    assert "Traceback" not in captured.err and "internal error" not in captured.err, captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgeprune: error: "), captured.err
    return lines[0]


def plant_journal(out: Path, data: Any) -> Path:
    state = out / STATE_DIR
    state.mkdir(parents=True)
    (state / "journal.json").write_text(json.dumps(data))
    return state / "journal.json"


JOURNALS: dict[str, tuple[Any, str]] = {
    "a-list": ([], r"top level: expected an object, got list"),
    "no-entries": ({"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT}, r"entries: missing"),
    "entries-a-list": ({"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT, "entries": []},
                       r"entries: expected an object, got list"),
    "latency-a-string": ({"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT,
                          "entries": {"1:floor:x": [{**GOOD_READING, "median_ms": "fast"}]}},
                         r"entries\['1:floor:x'\]\[0\]\.median_ms: expected a non-negative number, got 'fast'"),
    "reading-a-number": ({"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT, "entries": {"1:floor:x": [3]}},
                         r"expected an object, got int"),
    "unknown-field": ({"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT,
                       "entries": {"1:floor:x": [{**GOOD_READING, "speed": 1}]}}, r"unknown field 'speed'"),
}


@pytest.mark.parametrize("name", list(JOURNALS))
def test_a_journal_of_the_wrong_shape_is_one_line(name: str, files: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data, match = JOURNALS[name]
    out = tmp_path / "out"
    journal = plant_journal(out, data)
    before = journal.read_bytes()
    capsys.readouterr()
    line = one_error_line(capsys, main(fit_argv(files, out, "--resume")))
    assert f"the resume journal {journal} is damaged" in line and "--force" in line, line
    assert re.search(match, line), line
    assert journal.read_bytes() == before, "the damaged journal was modified"
    assert not any((out / f).exists() for f in RESULT_FILES)


def test_an_unwritable_resume_folder_is_one_line(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal cannot be saved (a read-only folder; root ignores permission bits, so the write fails here)."""
    out = tmp_path / "out"
    plant_journal(out, {"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT, "entries": {}})

    def refuse(path: Path, data: Any) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(resume_module, "write_json_atomic", refuse)
    capsys.readouterr()
    line = one_error_line(capsys, main(fit_argv(files, out, "--resume")))
    assert re.search(rf"cannot write the resume state in {re.escape(str(out / STATE_DIR))}: Permission denied; "
                     r"make the folder writable", line), line


def test_a_resume_state_that_cannot_be_written_mid_run_is_kept(files: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder turns unwritable after the run started (the first measurement's save fails): the line says
    so, and the journal of the measurements so far stays for ``--resume`` (before, the run deleted it)."""
    out = tmp_path / "out"
    saves: list[Path] = []
    real_write = resume_module.write_json_atomic

    def refuse_after_the_first(path: Path, data: Any) -> Path:
        saves.append(path)
        if len(saves) > 1:
            raise PermissionError(13, "Permission denied", str(path))
        return real_write(path, data)

    monkeypatch.setattr(resume_module, "write_json_atomic", refuse_after_the_first)
    capsys.readouterr()
    code = main(fit_argv(files, out))
    err = capsys.readouterr().err  # a busy CPU may add a warning about noisy timings: the error is still one line
    errors = [line for line in err.splitlines() if line.startswith("edgeprune: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    line = errors[0]
    assert "cannot write the resume state in" in line and "rerun the same command with --resume" in line, line
    assert len(saves) == 2
    assert json.loads((out / STATE_DIR / "journal.json").read_text())["fingerprint"] == FINGERPRINT


@pytest.mark.full  # a fault variant of the quick tier's resume (10 s); the full tier's kill sweep also kills here
def test_a_run_killed_after_renaming_its_state_aside_resumes(files: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Killed between renaming its finished state aside and deleting it: the results are complete and the
    journal whole but aside. ``--resume`` puts it back and finishes (before: "nothing to resume", exit 2)."""
    out = tmp_path / "out"
    aside = out / f"{DONE_PREFIX}4242"
    plant_journal(out, {"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT, "entries": {}})
    (out / STATE_DIR).rename(aside)
    (out / f"{DONE_PREFIX}17").mkdir()  # an older one, already emptied
    (out / "report.json").write_text("{}")  # the killed run's committed results
    capsys.readouterr()
    assert main(fit_argv(files, out, "--resume")) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert json.loads((out / "report.json").read_text())["final"]
    # --resume again (or after a kill once the journal was gone): the run finished with these options, so its
    # results are the answer (exit 0); with other options it is still refused (test below)
    assert main(fit_argv(files, out, "--resume")) == 0, capsys.readouterr().err
    assert "budget met" in capsys.readouterr().out


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_resume_folder_is_one_line(files: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    plant_journal(out, {"format": JOURNAL_FORMAT, "fingerprint": FINGERPRINT, "entries": {}})
    (out / STATE_DIR).chmod(0o555)
    try:
        capsys.readouterr()
        line = one_error_line(capsys, main(fit_argv(files, out, "--resume")))
        assert "cannot write the resume state in" in line, line
    finally:
        (out / STATE_DIR).chmod(0o755)


def _table_dir_refused_before_the_work(files: Path, tmp_path: Path, table_dir: Path,
                                       capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "out"
    argv = fit_argv(files, out, "--table-dir", str(table_dir))
    argv[argv.index("uniform")] = "latency"  # the latency allocation builds and saves a table
    argv[argv.index("1000ms")] = "50%"  # a budget that needs pruning, so the table would be built
    capsys.readouterr()
    started = time.monotonic()
    line = one_error_line(capsys, main(argv))
    assert time.monotonic() - started < 30, "refused only after the work (the issue saw 103 s)"
    assert re.search(rf"cannot write to --table-dir {re.escape(str(table_dir))}: .*; make it writable", line), line
    assert not out.exists() or not any(out.iterdir()), "a refused run left state behind"
    return line


def test_a_table_dir_that_cannot_be_created_is_refused_before_the_work(
        files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _table_dir_refused_before_the_work(files, tmp_path, files / "a_file" / "tables", capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_table_dir_is_refused_before_the_work(files: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    tables.chmod(0o555)
    try:
        _table_dir_refused_before_the_work(files, tmp_path, tables, capsys)
    finally:
        tables.chmod(0o755)


def test_resume_of_a_finished_run_says_there_is_nothing_to_resume(files: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    capsys.readouterr()
    line = one_error_line(capsys, main(fit_argv(files, out, "--resume")))
    assert "holds the results of a finished run and no interrupted one: nothing to resume; pass --force" in line

"""edgeprune.fit.outputs: the output directory with its staging area."""

from __future__ import annotations

import importlib
import os
import stat
from pathlib import Path

import pytest

from edgeprune.errors import InputError, OutputError
from edgeprune.fit.outputs import RESULT_FILES, OutputDir


def test_new_directory_is_created_with_staging(tmp_path: Path) -> None:
    out = OutputDir(tmp_path / "a" / "b", force=False)
    assert out.path.is_dir()
    assert out.staging.is_dir() and out.staging.parent == out.path
    assert out.staging.name.startswith(".edgeprune-staging-")
    assert out.work == out.staging / "work" and out.work.is_dir()


def test_a_failed_run_leaves_no_empty_folders_it_created(tmp_path: Path) -> None:
    out = OutputDir(tmp_path / "a" / "b", force=False)
    out.discard()  # the run failed: nothing was committed
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    OutputDir(existing, force=False).discard()
    assert existing.is_dir(), "a folder the user made is kept, empty or not"


def test_a_committed_run_keeps_its_folder(tmp_path: Path) -> None:
    out = OutputDir(tmp_path / "new", force=False)
    (out.staging / "report.json").write_text("{}")
    out.commit(["report.json"])
    assert (tmp_path / "new" / "report.json").read_text() == "{}"
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["report.json"]


def test_directory_with_other_files_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    out = OutputDir(tmp_path, force=False)
    out.discard()
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", RESULT_FILES)
def test_existing_results_are_refused_without_force(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("old")
    with pytest.raises(OutputError, match=f"already holds results \\({name}\\).*--force"):
        OutputDir(tmp_path, force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing staged
    out = OutputDir(tmp_path, force=True)
    assert out.staging.is_dir()
    out.discard()


def test_commit_moves_files_and_removes_staging(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("old")
    out = OutputDir(tmp_path, force=True)
    (out.staging / "report.json").write_text("new")
    (out.staging / "plan.json").write_text("{}")
    (out.work / "scratch.onnx").write_text("tmp")
    placed = out.commit(["report.json", "plan.json"])
    assert placed == {"report.json": tmp_path / "report.json", "plan.json": tmp_path / "plan.json"}
    assert (tmp_path / "report.json").read_text() == "new"
    assert (tmp_path / "plan.json").read_text() == "{}"
    assert not out.staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "report.json"]


def test_force_leaves_no_result_of_the_earlier_run_beside_the_new_ones(tmp_path: Path) -> None:
    for old in ("model.xml", "model.bin", "model.xml.json", "layer_latency.png", "report.json"):
        (tmp_path / old).write_text("from the earlier run")
    (tmp_path / "notes.txt").write_text("the user's")
    out = OutputDir(tmp_path, force=True)
    (out.staging / "report.json").write_text("new")
    (out.staging / "model.onnx").write_text("new")
    out.commit(["model.onnx", "report.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "notes.txt", "report.json"]


def test_committed_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = OutputDir(tmp_path, force=False)
        staged = out.staging / "report.md"
        staged.write_text("x")
        os.chmod(staged, 0o600)  # as a mkstemp file would be
        out.commit(["report.md"])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o644


def test_discard_removes_staging(tmp_path: Path) -> None:
    out = OutputDir(tmp_path, force=False)
    (out.work / "partial.onnx").write_bytes(b"\x00" * 10)
    out.discard()
    assert not out.staging.exists()
    assert list(tmp_path.iterdir()) == []
    out.discard()  # idempotent


def test_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        OutputDir(path, force=True)
    assert issubclass(OutputError, InputError)


def test_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write to output directory"):
        OutputDir(tmp_path / "file" / "out", force=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not apply to root")
def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            OutputDir(locked, force=False)
    finally:
        locked.chmod(0o700)


def test_a_resumed_run_may_replace_its_own_results_and_removes_stale_staging(tmp_path: Path) -> None:
    """Issue 36: a run killed during its final commit left results (and a staging folder) that --resume refused."""
    (tmp_path / "model.onnx").write_text("committed before the kill")
    stale = tmp_path / ".edgeprune-staging-killed"
    (stale / "work").mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"\0" * 1024)
    (tmp_path / "notes.txt").write_text("the user's")
    with pytest.raises(OutputError, match="already holds results"):
        OutputDir(tmp_path, force=False)
    assert stale.is_dir()  # a run that does not resume leaves other runs' staging alone
    out = OutputDir(tmp_path, force=False, resuming=True)
    assert not stale.exists() and out.staging.is_dir()
    (out.staging / "model.onnx").write_text("new")
    out.commit(["model.onnx"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "notes.txt"]


def test_committed_files_are_fsynced_before_their_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = importlib.import_module("edgeprune.fit.outputs")  # edgeprune.fit is also the fit function's name
    synced: list[str] = []
    monkeypatch.setattr(outputs, "fsync_file", lambda path: synced.append(Path(path).name))
    out = OutputDir(tmp_path, force=False)
    for name in ("plan.json", "report.json"):
        (out.staging / name).write_text("{}")
    out.commit(["plan.json", "report.json"])
    assert synced == ["plan.json", "report.json"]

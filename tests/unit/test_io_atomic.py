"""edgeprune.io_atomic: atomic writes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from edgeprune.io_atomic import remove_stale_temps, write_atomic, write_json_atomic, write_text_atomic


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "report.json"
    data = {"b": 1, "a": [1.5, None, True], "name": "café"}
    assert write_json_atomic(path, data) == path
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == data
    assert text.endswith("\n")
    assert text.index('"b"') < text.index('"a"')  # insertion order kept
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]  # no temporary files left


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"v": 1})
    write_json_atomic(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failing_writer_keeps_previous_content(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"v": 1})

    def broken(tmp: Path) -> None:
        tmp.write_text('{"v": 2, "trunc')  # half written, then fails
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_unserialisable_data_keeps_previous_content(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failing_writer_creates_nothing(tmp_path: Path) -> None:
    def broken(tmp: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "new.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomic(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "r.md", "# héllo\n")
    assert path.read_text(encoding="utf-8") == "# héllo\n"


def test_the_file_and_its_folder_are_fsynced_before_and_after_the_rename(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 36: without fsync a power cut can leave an empty file under the final name."""
    import edgeprune.io_atomic as io_atomic

    synced: list[tuple[int, bool]] = []  # (inode, the target already renamed)
    real_fsync = os.fsync
    target = tmp_path / "report.json"

    def spy(fd: int) -> None:
        synced.append((os.fstat(fd).st_ino, target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(io_atomic.os, "fsync", spy)
    write_json_atomic(target, {"a": 1})
    assert (target.stat().st_ino, False) in synced  # the data, before the rename
    assert (tmp_path.stat().st_ino, True) in synced  # the folder's entry, after it


def test_temporary_files_left_by_a_killed_writer_are_removed_and_a_live_one_is_kept(tmp_path: Path) -> None:
    """A SIGKILL between mkstemp and the rename leaves ``.NAME.xxxx.tmp`` (issue 36: the latency table)."""
    target = tmp_path / "table.json"
    stale, live, other = (tmp_path / ".table.json.a1b2.tmp", tmp_path / ".table.json.c3d4.tmp",
                          tmp_path / ".other.json.e5f6.tmp")
    for path in (stale, live, other):
        path.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    assert remove_stale_temps(target) == [stale]
    assert not stale.exists() and live.exists() and other.exists()

"""Atomic, durable file writes: write to a temporary file in the same directory, flush it to disk, rename it
over the target, then flush the directory.

A reader never sees a half-written report or model, and an interrupted run leaves the previous file intact.
The file is fsynced before the rename and its folder after it, so a power cut cannot leave an empty or
truncated file under the final name (on file systems that order metadata after data only on fsync, such as
ext4 with ``delalloc``, XFS and btrfs).
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def replace_durably(source: Path, destination: Path) -> None:
    """Rename ``source`` over ``destination`` (same file system) and flush the destination's folder."""
    os.replace(source, destination)
    fsync_dir(Path(destination).parent)


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, fsync it, then move ``tmp_path`` to ``path`` in one rename and fsync the
    folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        fsync_file(tmp)
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


#: a temporary file of an atomic write older than this was left by a killed writer (a write takes milliseconds)
STALE_TEMP_AGE_S = 600.0


def remove_stale_temps(path: Path, older_than_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove the temporary files that killed atomic writes of ``path`` left beside it (``.NAME.*.tmp`` not
    modified for ``older_than_s`` seconds: a live writer's file is newer); returns them."""
    path = Path(path)
    now = time.time()
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp") if path.parent.is_dir() else []:
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


def write_text_atomic(path: Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, data: Any) -> Path:
    """Atomically write indented JSON."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")

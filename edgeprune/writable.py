"""Checking up front that a folder a command will write into can be written.

A long run that writes into a folder only at its end (a latency table after minutes of profiling) should be
refused in its first second, not after the work: :func:`require_writable_dir` creates the folder if needed and
writes and removes a probe file in it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeprune.errors import OutputError


def require_writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` if needed and prove a file can be created in it; else raise one
    :class:`~edgeprune.errors.OutputError` line naming ``what`` (e.g. ``--table-dir``) and the folder."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(20, "exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=".edgeprune-probe-", dir=path):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to {what} {path}: {exc.strerror or exc}; make it writable or choose "
                          "another folder") from None
    return path

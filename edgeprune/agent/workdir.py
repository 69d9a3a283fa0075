"""The agent's private temporary folder: created locked, removed on exit, swept on the next start if left behind.

Uploads are written only under this folder (mode 0700). A running agent holds an exclusive ``flock`` on it for
its whole life; the kernel drops that lock however the agent ends, ``kill -9`` included. So on start, every
``edgeprune-agent-*`` folder in the same parent that belongs to this user and whose lock can be taken is
left over from an agent that is gone, and is deleted. A folder is locked before it gets its sweepable name
(it is made under a hidden name, locked, then renamed), so a starting agent's folder is never taken for a
stale one. Where the platform has no ``flock`` (Windows) the folder is still removed on a normal exit, but
nothing is swept.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PREFIX = "edgeprune-agent-"


class PrivateDir:
    """A locked private folder under ``parent`` (default: the system's temporary folder)."""

    def __init__(self, parent: Path | None = None) -> None:
        self.parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        swept = sweep_stale(self.parent)
        if swept:
            log.info("removed %d temporary folder(s) left by agents that were killed: %s", len(swept),
                     ", ".join(p.name for p in swept))
        hidden = Path(tempfile.mkdtemp(prefix="." + PREFIX, dir=self.parent))
        os.chmod(hidden, 0o700)
        self._fd: int | None = None
        if fcntl is not None:
            self._fd = os.open(hidden, os.O_RDONLY)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        while True:
            path = self.parent / f"{PREFIX}{secrets.token_hex(6)}"
            if not path.exists():
                break
        os.rename(hidden, path)
        self.path = path

    def remove(self) -> None:
        """Delete the folder and everything in it, then drop the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sweep_stale(parent: Path) -> list[Path]:
    """Delete the agent folders in ``parent`` that this user owns and no running agent holds; return them."""
    if fcntl is None or not parent.is_dir():
        return []
    swept = []
    for entry in parent.iterdir():
        if not entry.name.startswith(PREFIX):
            continue
        try:
            info = entry.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            fd = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a running agent holds it
                continue
            shutil.rmtree(entry, ignore_errors=True)
            swept.append(entry)
        finally:
            os.close(fd)
    return swept

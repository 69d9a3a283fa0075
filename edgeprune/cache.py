"""Where edgeprune keeps what it derived itself: the trained demo model, latency tables."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EDGEPRUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgeprune``, else ``~/.cache/edgeprune``."""
    env = os.environ.get("EDGEPRUNE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "edgeprune"

"""What every benchmark result file records about where it came from: the commit, the machine, the versions.

A row measured before a behaviour change must be told apart from one measured after, so each result file
carries the git commit it ran at (``+dirty`` when the tree had uncommitted changes), the machine's CPU and
the runtime and library versions (:func:`edgeprune.environment.package_versions`).
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeprune.environment import machine_info, package_versions

REPO = Path(__file__).resolve().parents[2]


def git_commit() -> str:
    """The short commit of the checkout, with ``+dirty`` when tracked files have uncommitted changes.

    A copy of a checkout (a borrowed GPU machine, whose ``.git`` may be missing or older than the files) gets the
    commit from ``EDGEPRUNE_BENCH_COMMIT``, set by whoever copied it, marked as told rather than read.
    """
    told = os.environ.get("EDGEPRUNE_BENCH_COMMIT")
    if told:
        return f"{told} (a copy of the checkout; commit as told)"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def provenance() -> dict[str, Any]:
    """``{"commit", "machine", "versions", "created_utc"}`` for a result file."""
    return {"commit": git_commit(), "machine": machine_info(), "versions": package_versions(),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}

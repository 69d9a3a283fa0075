"""Running one benchmark cell: its work folder, a budget out of reach kept as a result, its wall time, and its
result written atomically. Shared by the benchmarks that run ``edgeprune.fit`` cell by cell (detection,
allocation)."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provenance import provenance

from edgeprune.errors import BudgetUnreachableError
from edgeprune.io_atomic import write_json_atomic

log = logging.getLogger("bench")


def run_and_save(name: str, path: Path, record: dict[str, Any], body: Callable[[Path, dict[str, Any]], None],
                 prefix: str) -> dict[str, Any]:
    """``body(work folder, record)`` fills ``record``; a budget the fit refuses becomes ``status: unreachable``.
    The record gets its wall time and creation time and is written to ``path``."""
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-{name}-"))
    start = time.perf_counter()
    log.info("cell %s", name)
    try:
        body(work, record)
    except BudgetUnreachableError as exc:
        log.warning("cell %s: %s", name, exc)
        record.update({"status": "unreachable", "detail": str(exc)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record.setdefault("provenance", provenance())  # the commit, machine and versions behind the figures
    record["wall_seconds"] = time.perf_counter() - start
    record["created_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(path, record)
    return record

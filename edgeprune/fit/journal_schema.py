"""The resume journal's schema: a journal read back is checked field by field before anything replays it.

A journal is written by edgeprune, but it lives in the user's output folder: a damaged disk, a hand edit or a
copied folder can leave valid JSON of the wrong shape. Each problem is one :class:`~edgeprune.errors.OutputError`
naming the journal, the field and what to do (``--force`` starts over), never an internal error later.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgeprune.errors import OutputError

#: the fields of one journalled reading (:class:`~edgeprune.timing.LatencyStats`) and their types
_FLOAT_FIELDS = ("median_ms", "p90_ms", "mean_ms", "min_ms", "cv")
_OPTIONAL_FLOAT_FIELDS = ("paired_ratio",)


def _damaged(path: Path, where: str, problem: str) -> OutputError:
    return OutputError(f"the resume journal {path} is damaged ({where}: {problem}); pass --force instead of "
                       "--resume to start the run over")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_reading(path: Path, where: str, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise _damaged(path, where, f"expected an object, got {type(entry).__name__}")
    known = set(_FLOAT_FIELDS) | set(_OPTIONAL_FLOAT_FIELDS) | {"runs", "noisy", "disturbed_share", "oversubscribed"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise _damaged(path, where, f"unknown field '{unknown[0]}'")
    for name in _FLOAT_FIELDS:
        if name not in entry:
            raise _damaged(path, where, f"missing '{name}'")
        if not _is_number(entry[name]) or entry[name] < 0:
            raise _damaged(path, f"{where}.{name}", f"expected a non-negative number, got {entry[name]!r:.40}")
    for name in _OPTIONAL_FLOAT_FIELDS:
        if name in entry and entry[name] is not None and (not _is_number(entry[name]) or entry[name] <= 0):
            raise _damaged(path, f"{where}.{name}", f"expected a positive number, got {entry[name]!r:.40}")
    runs = entry.get("runs")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 0:
        raise _damaged(path, f"{where}.runs", f"expected a count, got {runs!r:.40}")
    if not isinstance(entry.get("noisy"), bool):
        raise _damaged(path, f"{where}.noisy", f"expected true or false, got {entry.get('noisy')!r:.40}")
    share = entry.get("disturbed_share", 0.0)
    if not _is_number(share) or not 0 <= share <= 1:
        raise _damaged(path, f"{where}.disturbed_share", f"expected a share from 0 to 1, got {share!r:.40}")
    if not isinstance(entry.get("oversubscribed", False), bool):
        raise _damaged(path, f"{where}.oversubscribed", f"expected true or false, got {entry['oversubscribed']!r:.40}")
    return dict(entry)


def parse_journal(path: Path, data: Any) -> tuple[str | None, str | None, dict[str, list[dict[str, Any]]]]:
    """``(format, fingerprint, entries)`` of a journal's JSON ``data`` read from ``path``, every reading checked.

    Raises :class:`~edgeprune.errors.OutputError` naming ``path`` and the first field of the wrong shape.
    """
    if not isinstance(data, dict):
        raise _damaged(path, "top level", f"expected an object, got {type(data).__name__}")
    fmt, fingerprint = data.get("format"), data.get("fingerprint")
    if not isinstance(fmt, str) or not isinstance(fingerprint, str):
        raise _damaged(path, "format/fingerprint", "missing or not text")
    if "entries" not in data:
        raise _damaged(path, "entries", "missing")
    entries = data["entries"]
    if not isinstance(entries, dict):
        raise _damaged(path, "entries", f"expected an object, got {type(entries).__name__}")
    parsed: dict[str, list[dict[str, Any]]] = {}
    for key, readings in entries.items():
        if not isinstance(readings, list):
            raise _damaged(path, f"entries[{key!r:.60}]", f"expected a list, got {type(readings).__name__}")
        parsed[key] = [_check_reading(path, f"entries[{key!r:.60}][{i}]", r) for i, r in enumerate(readings)]
    return fmt, fingerprint, parsed

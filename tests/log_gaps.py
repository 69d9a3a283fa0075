"""Reading a ``--log-file``: the longest silence between two consecutive lines (issue 37: no silent minute).

Each line of a log file starts with its date and time (``edgeprune.cli.common.LOG_FILE_FORMAT``:
``2026-12-08 10:27:13,123 INFO edgeprune.fit.run: ...``); a record that spans several lines (a traceback, a
table) continues on lines without one, which belong to the line above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

#: the most a fit may stay silent: every stage logs its progress at least this often
MAX_SILENCE_S = 30.0

_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) ")


@dataclass(frozen=True)
class Silence:
    """The longest gap between two consecutive timestamped lines: its length and the lines around it."""

    seconds: float
    before: str
    after: str
    lines: int

    def __str__(self) -> str:
        return f"{self.seconds:.1f} s of silence (of {self.lines} lines) between\n  {self.before}\n  {self.after}"


def longest_silence(path: Path) -> Silence:
    """The longest gap between consecutive timestamped lines of the log file at ``path``."""
    stamped = [(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), line)
               for line in path.read_text(encoding="utf-8").splitlines() if (m := _STAMP.match(line))]
    assert len(stamped) >= 2, f"{path} has {len(stamped)} timestamped lines"
    gaps = [((b[0] - a[0]).total_seconds(), a[1], b[1]) for a, b in zip(stamped, stamped[1:])]
    seconds, before, after = max(gaps, key=lambda gap: gap[0])
    return Silence(seconds, before, after, len(stamped))


def assert_never_silent(path: Path, limit_s: float = MAX_SILENCE_S) -> Silence:
    """Fail when the log file at ``path`` has two consecutive lines more than ``limit_s`` apart."""
    silence = longest_silence(path)
    assert silence.seconds <= limit_s, str(silence)
    return silence

"""Progress bars for long stages (fine-tuning, evaluation, profiling), drawn by rich on stderr.

Bars appear only on an interactive terminal and only when edgeprune logs at INFO or below, so piped
output, CI logs and ``--quiet`` runs stay clean; they are transient (removed when the stage ends) and the
stage's result is logged as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_console = Console(stderr=True)

Advance = Callable[[int], None]


def _enabled() -> bool:
    return _console.is_terminal and logging.getLogger("edgeprune").isEnabledFor(logging.INFO)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Advance]:
    """Yield ``advance(n)``; draws a bar of ``total`` steps when the terminal is interactive."""
    if not _enabled() or total <= 0:
        yield lambda n=1: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def progress_callback(description: str) -> Iterator[Callable[[int, int, str], None]]:
    """Yield ``report(done, total, what)`` (the profiler's progress signature), drawn as one bar."""
    if not _enabled():
        yield lambda done, total, what: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{description}: {what}")

        yield report

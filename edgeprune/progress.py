"""Progress of long stages: rich bars on an interactive terminal, a log line at least every 30 s otherwise.

Every stage that can take more than a few seconds runs inside one of three context managers:

* :func:`progress_bar` (``description``, ``total``) yields ``advance(n)``, for a loop over known steps;
* :func:`progress_callback` (``description``) yields ``report(done, total, what)``, the profiler's signature;
* :func:`heartbeat` (``description``) for one opaque call (a runtime's quantizer, Torch-Pruning's tracing).

On an interactive terminal at INFO a stage is drawn as a transient rich bar (stages inside stages are rows of
one display). Whatever the terminal, a thread also watches the stages while any runs: once nothing has been
logged by edgeprune for :data:`LOG_EVERY_S` seconds, it logs the state of the innermost stage that has run
:data:`FIRST_LINE_AFTER_S` seconds through the ``edgeprune.progress`` logger, e.g.
``scoring channel importance (lasso): 37/120 groups (31%), 1 min 02 s elapsed, about 2 min left``, followed by
``; now <stage>`` when a younger stage runs inside it. Short stages and
stages that log for themselves stay quiet; a stage whose single step takes minutes still gets its line. These
records carry ``edgeprune_progress = True`` (:func:`is_progress_record`), so a terminal handler that shows the
bars can drop them (:func:`drop_drawn_progress`); a log file keeps them. Nothing is logged when the
``edgeprune`` logger does not log INFO (``--quiet`` without ``--log-file``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgeprune.timing import monotonic_s

log = logging.getLogger(__name__)

#: a progress line is logged once edgeprune has logged nothing for this long (seconds): under 30 s, so that
#: the thread's wake-ups and a busy machine still leave no gap of 30 s between lines
LOG_EVERY_S = 25.0
#: no progress line before the outermost running stage has run this long (seconds): short stages stay quiet
FIRST_LINE_AFTER_S = 10.0
#: the watching thread wakes at most this often (seconds); never less often than a fifth of LOG_EVERY_S
TICK_S = 1.0

Advance = Callable[[int], None]
T = TypeVar("T")
Report = Callable[[int, int, str], None]


@dataclass
class _Settings:
    console: Console = field(default_factory=lambda: Console(stderr=True))
    #: draw bars: None decides by the console (an interactive terminal) and the edgeprune logger (INFO)
    bars: bool | None = None


_settings = _Settings()


def configure(console: Console | None = None, bars: bool | None = None) -> None:
    """Where bars are drawn (the console the terminal's log handler writes to, so lines scroll above them) and
    whether they are (None: on an interactive terminal when edgeprune logs INFO). The CLI calls it once."""
    _settings.console = console or Console(stderr=True)
    _settings.bars = bars


def _bars_drawn() -> bool:
    if _settings.bars is not None:
        return _settings.bars
    return _settings.console.is_terminal and logging.getLogger("edgeprune").isEnabledFor(logging.INFO)


def is_progress_record(record: logging.LogRecord) -> bool:
    """Whether ``record`` is a progress line logged by this module."""
    return bool(getattr(record, "edgeprune_progress", False))


def drop_drawn_progress(record: logging.LogRecord) -> bool:
    """A logging filter for the terminal's handler: progress lines are dropped while bars show the same."""
    return not (is_progress_record(record) and _bars_drawn())


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"1 min 02 s"``, ``"1 h 05 min"``.

    >>> format_duration(62.4)
    '1 min 02 s'
    """
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _about(seconds: float) -> str:
    """A rounded estimate: ``"about 40 s"``, ``"about 3 min"``, ``"about 1 h 10 min"``."""
    if seconds < 60:
        return f"about {max(5, int(math.ceil(seconds / 5.0)) * 5)} s"
    if seconds < 3600:
        return f"about {int(round(seconds / 60.0))} min"
    return f"about {format_duration(round(seconds / 600.0) * 600.0)}"


@dataclass
class _Stage:
    """One running stage, as the watching thread and the bar see it."""

    description: str
    total: int | None
    started_s: float
    unit: str = ""
    done: int = 0
    task: TaskID | None = None

    def line(self, now_s: float) -> str:
        """``<description>: 37/120 (31%), 1 min 02 s elapsed, about 2 min left``."""
        elapsed = now_s - self.started_s
        if not self.total:
            return f"{self.description}: still running, {format_duration(elapsed)} elapsed"
        done = min(self.done, self.total)
        unit = f" {self.unit}" if self.unit else ""
        text = f"{self.description}: {done}/{self.total}{unit} ({100 * done // self.total}%), " \
               f"{format_duration(elapsed)} elapsed"
        if 0 < done < self.total:
            text += f", {_about(elapsed * (self.total - done) / done)} left"
        return text


class _Watch:
    """The running stages (innermost last), the time of edgeprune's last log line, and the thread that speaks
    when nothing else has for :data:`LOG_EVERY_S`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stages: list[_Stage] = []
        self.last_line_s = -math.inf
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.display: Progress | None = None

    def push(self, stage: _Stage, draw: bool, speak: bool) -> None:
        with self.lock:
            self.stages.append(stage)
            if draw:
                stage.task = self._bar().add_task(stage.description, total=stage.total, count=_count(stage))
            if speak and self.thread is None:
                _LastLine.install()
                self.stop = threading.Event()
                self.thread = threading.Thread(target=self._run, args=(self.stop,), name="edgeprune-progress",
                                               daemon=True)
                self.thread.start()

    def pop(self, stage: _Stage) -> None:
        thread = None
        with self.lock:
            if stage in self.stages:
                self.stages.remove(stage)
            if stage.task is not None and self.display is not None:
                self.display.remove_task(stage.task)
                if not self.display.tasks:
                    self.display.stop()
                    self.display = None
            if not self.stages and self.thread is not None:
                self.stop.set()
                thread, self.thread = self.thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def update(self, stage: _Stage, done: int | None = None, total: int | None = None,
               description: str | None = None) -> None:
        with self.lock:
            if done is not None:
                stage.done = done
            if total is not None:
                stage.total = total
            if description is not None:
                stage.description = description
            if stage.task is not None and self.display is not None:
                self.display.update(stage.task, completed=stage.done, total=stage.total,
                                    description=stage.description, count=_count(stage))

    def _line(self, now_s: float) -> str | None:
        """The innermost stage that has run :data:`FIRST_LINE_AFTER_S`, and what runs inside it now, if anything
        (``profiling kernels: 442/557 (79%), ...; now quantizing to INT8 ...``); None while every stage is younger."""
        old = [stage for stage in self.stages if now_s - stage.started_s >= FIRST_LINE_AFTER_S]
        if not old:
            return None
        speaker, innermost = old[-1], self.stages[-1]
        text = speaker.line(now_s)
        return text if innermost is speaker else f"{text}; now {innermost.description}"

    def _bar(self) -> Progress:
        if self.display is None:
            columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                       TimeElapsedColumn(), TimeRemainingColumn())
            self.display = Progress(*columns, console=_settings.console, transient=True)
            self.display.start()
        return self.display

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(min(TICK_S, LOG_EVERY_S / 5)):
            now = monotonic_s()
            with self.lock:
                if not self.stages or now - self.last_line_s < LOG_EVERY_S:
                    continue
                text = self._line(now)
                if text is None:
                    continue
            log.info("%s", text, extra={"edgeprune_progress": True})
            self.last_line_s = max(self.last_line_s, monotonic_s())  # even where no handler noted it


def _count(stage: _Stage) -> str:
    return f"{stage.done}/{stage.total}{' ' + stage.unit if stage.unit else ''}" if stage.total else ""


_watch = _Watch()


def _forget_in_child() -> None:
    """A forked child (a data-loading worker) starts with no stages, no watching thread and fresh locks."""
    global _watch
    _watch = _Watch()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class _LastLine(logging.Handler):
    """Notes when edgeprune last logged a line at INFO or above (attached to the ``edgeprune`` logger)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        _watch.last_line_s = monotonic_s()

    @staticmethod
    def install() -> None:
        root = logging.getLogger("edgeprune")
        if not any(isinstance(h, _LastLine) for h in root.handlers):
            root.addHandler(_LastLine())


@contextmanager
def _stage(description: str, total: int | None, unit: str = "") -> Iterator[_Stage]:
    speak = logging.getLogger("edgeprune").isEnabledFor(logging.INFO)
    stage = _Stage(description, total if total and total > 0 else None, monotonic_s(), unit)
    _watch.push(stage, draw=_bars_drawn(), speak=speak)
    try:
        yield stage
    finally:
        _watch.pop(stage)


@contextmanager
def progress_bar(description: str, total: int, unit: str = "") -> Iterator[Advance]:
    """Yield ``advance(n=1)`` for a stage of ``total`` steps (``unit``: what a step is, e.g. ``"groups"``): a bar
    on a terminal, a line at least every 30 s in a log. Nothing for ``total <= 0`` (a rank that draws no bar)."""
    if total <= 0:
        yield lambda n=1: None
        return
    with _stage(description, total, unit) as stage:
        yield lambda n=1: _watch.update(stage, done=stage.done + n)


def counted(items: Iterable[T], advance: Advance) -> Iterator[T]:
    """Each of ``items``, advancing the bar by one once the loop's body has run for it (``continue`` included)."""
    for item in items:
        yield item
        advance(1)


@contextmanager
def progress_callback(description: str) -> Iterator[Report]:
    """Yield ``report(done, total, what)`` (the profiler's progress signature), shown like :func:`progress_bar`
    with ``what`` after the description."""
    with _stage(description, None) as stage:
        yield lambda done, total, what: _watch.update(stage, done=done, total=total,
                                                      description=f"{description}: {what}" if what else description)


@contextmanager
def heartbeat(description: str) -> Iterator[None]:
    """A stage without steps (one call that cannot report): a spinner on a terminal, and in a log
    ``<description>: still running, 1 min 02 s elapsed`` at least every 30 s."""
    with _stage(description, None):
        yield

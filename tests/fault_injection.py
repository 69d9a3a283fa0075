"""Run ``edgeprune`` in this process with a kill point: it SIGKILLs itself at a named moment (a test helper).

``python tests/fault_injection.py [--keep-journal PATH] POINT -- ARGS...`` runs ``edgeprune ARGS`` and kills
the process (SIGKILL: no ``finally``, no cleanup, as a power cut or the OOM killer would) at ``POINT``:

* ``none``: never;
* ``query:N``: at the N-th latency query to the resume journal (measured live or replayed), before its answer;
* ``journal:N``: right after the N-th save of the journal (N-1 measurements recorded, the N-th just written);
* ``checkpoint:N``: right after the N-th fine-tune checkpoint is written;
* ``commit:N``: in the final commit, before the N-th result file is renamed into place (N-1 already are);
* ``finish``: after the commit, before the journal is removed (the results are complete);
* ``aside``: after the finished run's state is renamed aside, before it is deleted;
* ``time:S``: after S seconds.

``--keep-journal PATH`` copies the journal to PATH when the run removes it (the complete record of every
measurement the run made), so a test can replay the same measurements in another folder. The patches are
made here, from outside edgeprune: the package has no fault-injection hooks of its own.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _counting(original: Callable[..., Any], at: int, before: bool) -> Callable[..., Any]:
    """``original`` wrapped to kill the process at its ``at``-th call, before or after the call itself."""
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if before and calls[0] == at:
            _kill()
        result = original(*args, **kwargs)
        if not before and calls[0] == at:
            _kill()
        return result

    return wrapper


def install(point: str, keep_journal: Path | None) -> None:
    """Patch edgeprune so that this process dies at ``point`` (see the module's docstring)."""
    resume = importlib.import_module("edgeprune.fit.resume")
    outputs = importlib.import_module("edgeprune.fit.outputs")
    loop = importlib.import_module("edgeprune.train.loop")
    kind, _, count = point.partition(":")
    if kind == "query":
        resume.RunJournal.measurement = _counting(resume.RunJournal.measurement, int(count), before=True)
    elif kind == "journal":
        resume.RunJournal._save = _counting(resume.RunJournal._save, int(count), before=False)
    elif kind == "checkpoint":
        loop.write_atomic = _counting(loop.write_atomic, int(count), before=False)
    elif kind == "commit":
        outputs.fsync_file = _counting(outputs.fsync_file, int(count), before=True)  # called once per file, just before its rename
    elif kind == "finish":
        resume.RunJournal.finish = lambda self: _kill()
    elif kind == "aside":
        resume.fsync_dir = _counting(resume.fsync_dir, 1, before=False)  # called once, just after the rename
    elif kind == "time":
        timer = threading.Timer(float(count), _kill)
        timer.daemon = True
        timer.start()
    elif kind != "none":
        raise SystemExit(f"unknown kill point {point!r}")
    if keep_journal is not None:
        finish = resume.RunJournal.finish

        def keep(self: Any) -> None:
            if self.path.is_file():
                shutil.copyfile(self.path, keep_journal)
            finish(self)

        resume.RunJournal.finish = keep


def main(argv: list[str]) -> int:
    """Parse the kill point, patch, and run the edgeprune command line in this process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("point")
    parser.add_argument("--keep-journal", type=Path)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    install(options.point, options.keep_journal)
    from edgeprune.cli.main import main as edgeprune_main

    return edgeprune_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run edgeprune's command line inside the test process, as ``python -m edgeprune`` would run it.

The same entry point (:func:`edgeprune.cli.main.main`: argument parsing, logging set-up, the guard that turns
errors into one line and an exit code), without a new interpreter. A fit in a new process pays 3-5 s of imports
(torch, scikit-learn, onnx) and the ONNX exporter's first-call set-up before its first stage; the quick tier runs
about ten such fits. Tests that are about the process itself (a crash, a signal, no traceback on stderr of a real
process, the console script) keep ``subprocess``.
"""

from __future__ import annotations

import contextlib
import io
import subprocess

from edgeprune.cli.main import main


def run_cli_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``edgeprune ARGS`` in this process: its exit code and what it wrote to stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse refusals end in SystemExit(2)
            code = stop.code if isinstance(stop.code, int) else 1
    return subprocess.CompletedProcess(["edgeprune", *args], code, out.getvalue(), err.getvalue())

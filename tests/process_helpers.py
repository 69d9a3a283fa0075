"""Helpers for tests that run edgeprune in a real subprocess and interrupt it."""

from __future__ import annotations

import signal
import subprocess


def interruptible_popen(cmd: list[str]) -> subprocess.Popen[str]:
    """Start ``cmd`` (stdout and stderr piped, text) with SIGINT at its default action.

    A shell without job control starts background commands (``pytest ... &``) with SIGINT ignored; a child
    inherits that, Python then installs no KeyboardInterrupt handler, and the test's SIGINT would be
    dropped silently (the run finishes with exit code 0 instead of 130).
    """
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

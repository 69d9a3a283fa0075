"""Silencing what runtimes and their converters write from native code (shared by the runtimes' folders).

Converters and interpreters (litert-torch, LiteRT, ExecuTorch's lowering and its XNNPACK runtime) write to the
process's file descriptors from native code (absl/TF logs, progress trees, delegate banners, cpuinfo notes), which
Python's ``redirect_stdout`` cannot catch; :func:`quiet_native_output` redirects the descriptors themselves for the
duration and sends what was written to this module's DEBUG log instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

log = logging.getLogger(__name__)

_NOISY_LOGGERS = ("absl", "litert_torch", "jax", "torch.export", "torch._dynamo", "torch.fx", "torch.utils._pytree",
                  "executorch", "torchao")
#: log levels read by native TF/absl logging when it first loads; set only while output is being silenced
_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3"}


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Silence everything written to stdout/stderr for the duration, from Python and from native code.

    Python-level streams are redirected to a buffer, the noisy loggers are raised to ERROR, warnings are
    ignored (and the warning filters restored afterwards, undoing filters that imports install), the native
    log-level variables are set (:func:`_quiet_env`), and file descriptors 1 and 2 point at a temporary file.
    The captured text goes to this module's DEBUG log. The descriptor redirect is process-wide, so other
    threads' output in that window is captured too.
    """
    captured = io.StringIO()
    previous_levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(tempfile.TemporaryFile(mode="w+b"))
        saved: list[tuple[int, int]] = []
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
            except OSError:  # no such descriptor (embedded interpreters): Python-level redirect only
                pass
        try:
            with _quiet_env(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            for name, level in previous_levels.items():
                logging.getLogger(name).setLevel(level)
            sink.seek(0)
            native = sink.read().decode("utf-8", errors="replace")
            text = (captured.getvalue() + native).strip()
            if text:
                log.debug("native output:\n%s", text)


@contextlib.contextmanager
def _quiet_env() -> Iterator[None]:
    """Set :data:`_QUIET_ENV` for the duration (native TF/absl logging reads it when it first loads).

    Afterwards each variable gets its previous value back, unless something inside the window set it to a
    value of its own (``import litert_torch`` sets ``TF_CPP_MIN_LOG_LEVEL=1``): that is left as a plain
    import would leave it.
    """
    previous = {key: os.environ.get(key) for key in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    try:
        yield
    finally:
        for key, value in previous.items():
            if os.environ.get(key) != _QUIET_ENV[key]:
                continue
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

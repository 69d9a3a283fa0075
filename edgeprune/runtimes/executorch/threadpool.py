"""ExecuTorch's one process-wide thread pool, shared safely by sessions that want different thread counts.

XNNPACK binds a delegate to the pool that exists when its method is loaded (``xnn_create_runtime_v4`` is given
``get_pthreadpool()``), and ``_unsafe_reset_threadpool(n)`` destroys that pool and makes a new one. So a
thread count is honoured only by resetting the pool *before* loading, and a reset leaves every method loaded
earlier holding a destroyed pool. :class:`PoolState` counts resets (a generation); a session reloads its method
whenever the generation moved since it loaded, after setting the pool to its own count. All use of the pool
goes through :data:`POOL`'s lock, so two threads never reset it under each other.
"""

from __future__ import annotations

import threading
from typing import Any


class PoolState:
    """The pool's thread count and generation (incremented by every reset), behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.generation = 0
        self._threads: int | None = None

    def needs_reset(self, threads: int) -> bool:
        """Whether the pool is (or may be) of another width than ``threads``."""
        return self._threads != threads

    def ensure(self, runtime: Any, threads: int) -> int:
        """Make the pool ``threads`` wide (resetting it if needed; call with :attr:`lock` held) and return the
        generation a method loaded now belongs to."""
        if self._threads is None:
            self._threads = int(runtime._threadpool_get_thread_count())  # noqa: SLF001 - the only accessor
        if self._threads != threads:
            runtime._unsafe_reset_threadpool(threads)  # noqa: SLF001 - the wheel's only thread-count control
            self._threads = int(runtime._threadpool_get_thread_count())  # noqa: SLF001
            self.generation += 1
        return self.generation


#: the state of this process's ExecuTorch thread pool
POOL = PoolState()

"""Measurements spread over several devices at once, their files made and their results kept in one thread.

A pool of agents (:class:`~edgeprune.latency.timers.DevicePool`) times one artifact per device at a time;
the client side only waits on HTTP, so threads suffice. :func:`spread` prepares each item (exports its
artifact) and finishes it (writes its result) in the calling thread, in the order results arrive, and only
the measuring runs in worker threads: exporters and tables need no locks. One worker is a plain loop.

>>> done = []
>>> spread([1, 2, 3], lambda x: x * 10, lambda a: a + 1, lambda i, x, a, r: done.append((i, r)), workers=2)
>>> sorted(done)
[(0, 11), (1, 21), (2, 31)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")


def workers_of(timer: object) -> int:
    """How many measurements ``timer`` can take at once (a pool's devices; 1 for any other timer)."""
    return max(1, int(getattr(timer, "workers", 1)))


def spread(items: Sequence[T], prepare: Callable[[T], A], measure: Callable[[A], R],
           finish: Callable[[int, T, A, R], None], workers: int) -> None:
    """For each item: ``prepare`` it, ``measure`` what that gave, then ``finish(index, item, prepared, result)``.

    ``measure`` runs in up to ``workers`` threads at once; ``prepare`` and ``finish`` run in the calling
    thread, one item prepared ahead so that a device that frees up finds work waiting. The first error
    cancels what has not started and is raised once the measurements under way have ended.
    """
    if workers <= 1:
        for index, item in enumerate(items):
            prepared = prepare(item)
            finish(index, item, prepared, measure(prepared))
        return
    pending: dict[Future[R], tuple[int, T, A]] = {}
    queue = iter(enumerate(items))
    with ThreadPoolExecutor(workers, thread_name_prefix="edgeprune-measure") as pool:
        try:
            while True:
                for index, item in queue:
                    prepared = prepare(item)
                    pending[pool.submit(measure, prepared)] = (index, item, prepared)
                    if len(pending) > workers:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f][0]):
                    index, item, prepared = pending.pop(future)
                    finish(index, item, prepared, future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise

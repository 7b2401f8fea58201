"""Forked worker pools that shut down cleanly: one place for the pattern.

`multiprocessing.Pool`'s own `with` block ends in `terminate()`, which signals the workers
and joins its handler threads while they may still be talking to them. Once, under load,
the test suite hung with two exited workers and the parent in a futex wait (not
reproduced; that `terminate()` is the suspect). The Python documentation's graceful end is
`close()` then `join()`: used here when the work is done, `terminate()` only when the
block raises.

Only the parent speaks for the pool. A worker runs in a process group of its own, so
Ctrl-C or a SIGTERM to the stage's group reaches the parent alone, which stops the pool
with `terminate()` and says so once: a worker killed by the group's signal while it held
the task queue's lock (an idle worker waits for a task holding it) would hang
`terminate()` for good. A worker ignores SIGINT sent to it, dies quietly on SIGTERM (what
`terminate()` sends), and dies with the parent (a parent-death signal on Linux), so no
worker outlives a killed stage.
"""

from __future__ import annotations

import contextlib
import multiprocessing.pool
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

from .stage import die_with_parent  # the stage runner's own: one place for prctl

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def default_workers() -> int:
    """Worker processes: one per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _quiet_worker(parent: int) -> None:
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)            # out of the terminal's and the stage's process group
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(signal.SIGTERM, parent)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


@contextlib.contextmanager
def fork_pool(workers: int) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of `workers` forked processes (they inherit the caller's memory)."""
    # blocked while forking: a signal before a worker has set its handlers (_quiet_worker)
    # would run the parent's in it; the parent gets it once the workers are started
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=_quiet_worker, initargs=(os.getpid(),))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        yield pool
        pool.close()                # no more tasks: the workers finish the queue, then exit
    except BaseException:
        pool.terminate()            # an error (a bad file, Ctrl-C): stop at once
        raise
    finally:
        pool.join()


# The task of `fork_map`, which its forked workers inherit: so a closure over large arrays
# is never pickled; only task numbers go to the workers and results come back.
_task: list[Callable[[int], Any]] = []


def _run_task(index: int) -> Any:
    return _task[-1](index)


def fork_map(task: Callable[[int], Any], count: int, workers: int,
             on_wait: Callable[[], None] | None = None) -> Iterator[Any]:
    """`task(0), ..., task(count - 1)` in `workers` forked processes, yielded in order;
    `on_wait()` is called about twice a second while the next result is not ready (a
    progress bar's update). Results must pickle; `task` itself need not."""
    _task.append(task)
    try:
        with fork_pool(workers) as pool:
            results = pool.imap(_run_task, range(count))
            for _ in range(count):
                while True:
                    try:
                        result = results.next(timeout=0.5)
                        break
                    except multiprocessing.TimeoutError:
                        if on_wait is not None:
                            on_wait()
                yield result
    finally:
        _task.pop()

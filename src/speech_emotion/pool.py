"""Forked worker pools that shut down cleanly: one place for the pattern.

`multiprocessing.Pool`'s own `with` block ends in `terminate()`, which signals the workers
and joins its handler threads while they may still be talking to them. Once, under load,
the test suite hung with two exited workers and the parent in a futex wait (not
reproduced; that `terminate()` is the suspect). The Python documentation's graceful end is
`close()` then `join()`: used here when the work is done, `terminate()` only when the
block raises.
"""

from __future__ import annotations

import contextlib
import multiprocessing.pool
from collections.abc import Iterator


@contextlib.contextmanager
def fork_pool(workers: int) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of `workers` forked processes (they inherit the caller's memory)."""
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        yield pool
        pool.close()                # no more tasks: the workers finish the queue, then exit
    except BaseException:
        pool.terminate()            # an error (a bad file, Ctrl-C): stop at once
        raise
    finally:
        pool.join()

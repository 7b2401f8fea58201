"""Forked pools end gracefully (close, join) and stop at once on an error (terminate)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from pathlib import Path

import pytest

from speech_emotion.pool import fork_pool

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="needs fork")


def _touch_later(path: str) -> None:
    time.sleep(0.3)
    Path(path).touch()


def test_work_done_closes_and_joins_the_workers(tmp_path):
    """The block ends with tasks still queued: close() lets them run, then joins."""
    paths = [str(tmp_path / f"{i}.done") for i in range(4)]
    with fork_pool(2) as pool:
        assert list(pool.imap(abs, [-1, -2, 3])) == [1, 2, 3]
        pool.map_async(_touch_later, paths)
        workers = list(pool._pool)
    assert all(Path(p).exists() for p in paths)            # terminate() would have lost them
    assert [w.exitcode for w in workers] == [0, 0]


def test_an_error_stops_busy_workers_at_once_and_is_raised():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="bad file"):
        with fork_pool(2) as pool:
            workers = list(pool._pool)
            pool.map_async(time.sleep, [30, 30])           # both workers busy for 30 s
            time.sleep(0.5)
            raise RuntimeError("bad file")
    assert time.perf_counter() - start < 10                # not waiting for the tasks
    assert [w.exitcode for w in workers] == [-signal.SIGTERM, -signal.SIGTERM]

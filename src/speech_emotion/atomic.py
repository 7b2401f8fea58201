"""Outputs appear whole or not at all: write to a temporary name, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _tmp_name(path: Path, kind: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def _remove_stale(path: Path) -> None:
    """Remove the temporary files of `path` left by processes that no longer run (a stage
    killed with SIGKILL cannot clean up after itself)."""
    if os.name != "posix" or not path.parent.is_dir():
        return
    for prefix in (f".{path.name}.tmp-", f".{path.name}.old-"):
        for entry in list(path.parent.iterdir()):
            pid = entry.name.removeprefix(prefix)
            if entry.name.startswith(prefix) and pid.isdigit() and not _running(int(pid)):
                _remove(entry)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)                 # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:             # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`.

    On any exception the temporary file (or folder) is removed and `path` is untouched;
    an OSError that names no file (a full disk: ENOSPC) is raised again naming `path`.
    Temporary files of `path` left by killed processes are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = _tmp_name(path)
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        _replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        if err.errno is None or err.filename is not None:
            raise
        raise OSError(err.errno, f"{err.strerror or err}; not written", str(path)) from err
    except BaseException:
        _remove(tmp)
        raise


def _replace(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path`. A file replaces a file in one step; a folder cannot replace
    a folder, so the old one is moved aside first and put back if the rename fails."""
    if path.is_symlink() or (path.exists() and tmp.is_dir() != path.is_dir()):
        _remove(path)                   # another kind of thing: nothing to swap with
    if not path.is_dir():
        os.replace(tmp, path)
        return
    old = _tmp_name(path, "old")
    _remove(old)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it replaces `path`."""
    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        yield tmp


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, frame) -> None:
    """Write a pandas DataFrame as CSV, atomically, with a fixed float format."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")

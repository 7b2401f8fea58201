"""Outputs appear whole or not at all: write to a temporary name, then rename.

A stage (`stage.run`) turns SIGTERM and SIGINT into an `Interrupted` exception, so the
temporary file or folder of an interrupted write is removed like that of a failed one; the
swap of an output into place is never cut half-way (a signal waits until it is done).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Files that git and DVC keep inside an output folder (DVC writes a .gitignore beside each
# output it tracks): a folder output replacing an old one carries them over.
BOOKKEEPING = frozenset({".gitignore", ".gitattributes", ".dvcignore", ".gitkeep", ".keep"})
# errno values of a write that failed for want of room: a full disk, a quota, the
# file-size limit (`ulimit -f`: EFBIG; Python ignores SIGXFSZ, so the write fails)
NO_ROOM = {errno.ENOSPC: "", errno.EDQUOT: "",
           errno.EFBIG: " (over the file-size limit, `ulimit -f`, or the largest file the "
                        "file system holds)"}
_LEFTOVER = re.compile(r"\.(.+)\.(?:tmp|old)-(\d+)")


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


def remove_leftovers(folders: Iterable[str | Path]) -> list[Path]:
    """Remove every `.<name>.tmp-<pid>` and `.<name>.old-<pid>` in `folders` (not below)
    whose process no longer runs; the removed paths. A stage calls it on the pipeline's
    output folders when it starts: a killed writer's leftovers do not wait for the next
    write of the same output (DVC may restore that one from its cache instead)."""
    removed = []
    for folder in map(Path, folders):
        if os.name != "posix" or not folder.is_dir():
            continue
        for entry in list(folder.iterdir()):
            match = _LEFTOVER.fullmatch(entry.name)
            if match and not _running(int(match[2])):
                with contextlib.suppress(FileNotFoundError):   # another cleaner was first
                    _remove(entry)
                removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)                 # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:             # exists, owned by someone else
        return True
    except OverflowError:               # no such pid can exist
        return False
    return True


# ---------------------------------------------------------------- signals
class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT while `raise_on_signals` is in force (`signum` says which); a
    KeyboardInterrupt, so code that stops on Ctrl-C stops on SIGTERM alike."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_state = {"held": 0, "pending": None, "raised": False}


def _on_signal(signum: int, frame: object) -> None:
    if _state["raised"]:            # one is enough: the cleanup it started runs undisturbed
        return
    if _state["held"]:              # an output is being swapped in: after that
        _state["pending"] = signum
        return
    _state["raised"] = True
    raise Interrupted(signum)


@contextlib.contextmanager
def raise_on_signals(signums: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Within the block, the signals raise `Interrupted` (once; later ones are ignored,
    so the cleanup runs to its end); the previous handlers come back after it. Only the
    main thread can set handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in signums}
    _state.update(held=0, pending=None, raised=False)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        _state.update(held=0, pending=None, raised=False)


@contextlib.contextmanager
def _held() -> Iterator[None]:
    """A signal that arrives in the block is raised after it (an output swap, a cleanup)."""
    _state["held"] += 1
    try:
        yield
    finally:
        _state["held"] -= 1
    if not _state["held"] and _state["pending"] is not None:
        signum, _state["pending"] = _state["pending"], None
        _on_signal(signum, None)


# ---------------------------------------------------------------- writing
def _no_room(err: BaseException) -> tuple[int, str] | None:
    """(errno, strerror) when `err` or an error it was raised from is a write that found no
    room: an OSError, or a library's error that only quotes the errno (h5py: a RuntimeError
    `... errno = 27, error message = 'File too large' ...`)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in NO_ROOM:
            return err.errno, os.strerror(err.errno)    # h5py's strerror is a page long
        match = re.search(r"errno = (\d+)", str(err))
        if match and int(match[1]) in NO_ROOM:
            return int(match[1]), os.strerror(int(match[1]))
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`.

    On any exception the temporary file (or folder) is removed and `path` is untouched;
    an OSError that names no file, or a library's error that quotes a full disk (ENOSPC),
    a quota (EDQUOT) or the file-size limit (EFBIG), is raised again as an OSError naming
    `path`. Temporary files of `path` left by killed processes are removed first.
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
        with _held():
            _replace(tmp, path)
    except BaseException as err:
        with _held():
            _remove(tmp)
        named = _naming(err, path)
        if named is None:
            raise
        raise named from err


def _naming(err: BaseException, path: Path) -> OSError | None:
    """`err` again as an OSError naming `path`, where it names no file itself; None to
    raise it as it is."""
    if isinstance(err, OSError):
        if err.errno is None or err.filename is not None:
            return None
        code, strerror = err.errno, err.strerror or str(err)
        if code in NO_ROOM:               # h5py's OSError quotes a page of its internals
            strerror = os.strerror(code)
    elif isinstance(err, Exception) and (room := _no_room(err)) is not None:
        code, strerror = room
    else:
        return None
    return OSError(code, f"{strerror}{NO_ROOM.get(code, '')}; not written", str(path))


def _replace(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path`. A file replaces a file in one step; a folder cannot replace
    a folder, so the old one is moved aside first and put back if the rename fails. The
    git/DVC files of the old folder (`BOOKKEEPING`, `*.dvc`) that the new one lacks are
    copied into it first: a stage run by hand leaves DVC's .gitignore files in place."""
    if path.is_symlink() or (path.exists() and tmp.is_dir() != path.is_dir()):
        _remove(path)                   # another kind of thing: nothing to swap with
    if not path.is_dir():
        os.replace(tmp, path)
        return
    _carry_bookkeeping(path, tmp)
    old = _tmp_name(path, "old")
    _remove(old)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def _carry_bookkeeping(old: Path, new: Path) -> None:
    """Copy `old`'s git/DVC files into `new` where `new` has the folder but not the file."""
    for dirpath, _, names in os.walk(old):
        for name in names:
            if name not in BOOKKEEPING and not name.endswith(".dvc"):
                continue
            source = Path(dirpath) / name
            target = new / source.relative_to(old)
            if (target.parent.is_dir() and not target.exists() and not target.is_symlink()
                    and source.is_file() and not source.is_symlink()):
                shutil.copy2(source, target)


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

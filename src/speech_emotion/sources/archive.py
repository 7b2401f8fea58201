"""Safe extraction of a zip (Zenodo, Kaggle) or tar (.tar, .tar.gz, .tar.bz2, .tar.xz, as
people repack it): RAVDESS (`extract_speech`) and the external corpora (`opened`, then
`write_members` of the files the caller chose).

No member may escape the target folder: an archive with an absolute path, a `..`
component, a link or a device file is refused as a whole (a genuine RAVDESS archive has
none). Of RAVDESS only audio-only speech (`03-01-*`) in `Actor_NN/` folders is kept (one
copy, see `layout`), and the output folder appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

from tqdm import tqdm

from ..atomic import atomic_dir
from .layout import SourceError, select_copy

# What a damaged archive raises while a member is read.
READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
               tarfile.TarError)


class Member(NamedTuple):
    """One archive entry as the safety check sees it."""
    name: str
    is_file: bool
    link: str | None          # None, or what kind of link (or device) it is


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        link = "a symbolic link" if stat.S_ISLNK(info.external_attr >> 16) else None
        yield Member(info.filename, not info.is_dir() and link is None, link)


def _tar_members(archive: tarfile.TarFile) -> Iterator[Member]:
    for info in archive.getmembers():
        link = ("a symbolic link" if info.issym() else "a hard link" if info.islnk()
                else "a device or pipe" if not (info.isfile() or info.isdir()) else None)
        yield Member(info.name, info.isfile(), link)


def unsafe_members(members: list[Member]) -> list[str]:
    """The members that could write outside the target folder, each with the reason."""
    problems = []
    for member in members:
        name = member.name
        path = PurePosixPath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            problems.append(f"{name!r}: absolute path")
        elif ".." in path.parts:
            problems.append(f"{name!r}: '..' in the path")
        elif member.link:
            problems.append(f"{name!r}: {member.link}")
        elif "\x00" in name:
            problems.append(f"{name!r}: NUL in the name")
    return problems


def extract_speech(archive_path: Path, out_dir: Path, progress: bool = True,
                   log=print) -> list[Path]:
    """Extract the speech audio of a RAVDESS zip or tar into `out_dir/Actor_NN/`.

    Returns the paths written, sorted. Raises SourceError for an unreadable or unsafe
    archive; `out_dir` is then untouched.
    """
    archive_path, out_dir = Path(archive_path), Path(out_dir)
    with opened(archive_path) as (files, open_member):
        chosen = select_copy(files, str(archive_path), log=log)
        write_members(archive_path, open_member, chosen, out_dir, progress)
    return sorted(out_dir / target for target in chosen)


@contextlib.contextmanager
def opened(archive_path: Path) -> Iterator[tuple[list[str], Callable[[str], IO[bytes]]]]:
    """The regular files of a zip or tar (member names, in archive order) and a function
    that opens one of them, while the archive is open.

    Raises SourceError for an unreadable archive, and for an unsafe one (a member that
    could write outside the target folder) as a whole, before anything is read.
    """
    archive_path = Path(archive_path)
    try:
        if zipfile.is_zipfile(archive_path):
            archive = zipfile.ZipFile(archive_path)
            list_members, open_member = _zip_members, archive.open
        elif tarfile.is_tarfile(archive_path):
            archive = tarfile.open(archive_path)                   # any compression
            list_members, open_member = _tar_members, archive.extractfile
        else:
            raise SourceError(f"{archive_path}: not a zip or tar archive")
    except READ_ERRORS as err:
        raise SourceError(f"{archive_path}: not a readable archive ({err})") from None
    with archive:                                          # closed on every error below
        try:
            members = list(list_members(archive))
        except READ_ERRORS as err:
            raise SourceError(f"{archive_path}: not a readable archive ({err})") from None
        unsafe = unsafe_members(members)
        if unsafe:
            raise SourceError(f"{archive_path}: refused, {len(unsafe)} member(s) would escape "
                              "the target folder:\n" + "\n".join(f"  - {u}" for u in unsafe))
        yield [m.name for m in members if m.is_file], open_member


def write_members(archive_path: Path, open_member: Callable[[str], IO[bytes]],
                  chosen: dict[str, str], out_dir: Path, progress: bool = True) -> None:
    """Write each member `chosen[target]` to `out_dir/target`; the folder appears whole or
    not at all. The targets are the caller's validated names, never the member paths."""
    with atomic_dir(out_dir) as tmp:
        for target, member in tqdm(chosen.items(), desc="extracting", unit="file",
                                   disable=not progress):
            dest = tmp / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open_member(member) as source, open(dest, "wb") as dst:
                    shutil.copyfileobj(source, dst, 1 << 20)
            except READ_ERRORS as err:
                raise SourceError(f"{archive_path}: cannot extract {member!r} "
                                  f"({err})") from None

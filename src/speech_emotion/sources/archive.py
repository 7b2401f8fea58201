"""Safe extraction of a zip (Zenodo, Kaggle) or tar (.tar, .tar.gz, .tar.bz2, .tar.xz, as
people repack it): RAVDESS (`extract_speech`) and the external corpora (`opened`, then
`write_members` of the files the caller chose).

No member may escape the target folder: an archive with an absolute path, a `..`
component, a link or a device file is refused as a whole (a genuine RAVDESS archive has
none). Of RAVDESS only audio-only speech (`03-01-*`) in `Actor_NN/` folders is kept (one
copy, see `layout`), and the output folder appears whole or not at all.

What is extracted is bounded before anything is written (`check_sizes`): at most
MAX_EXTRACTED_BYTES in all, and no member (a zip's) or archive (a compressed tar's) that
expands more than MAX_RATIO times, so that a small archive cannot fill the disk. A
password-protected member, a truncated zip, and a 7z or RAR file are each refused with one
line naming the archive (and the member).
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

# What a damaged archive raises while a member is read (NotImplementedError: a zip
# compression method Python does not have, such as Deflate64).
READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
               tarfile.TarError, NotImplementedError)

# Limits on what one archive may extract, checked from its directory before anything is
# written (zipfile and tarfile read no more than the sizes it declares). Corpora of speech
# are a few GB (RAVDESS's speech 0.6 GB, CREMA-D 0.6 GB); audio barely compresses (deflate
# gives WAV 1.1-2x), so a member that expands more than MAX_RATIO times is a zip bomb, not
# a recording. Members below RATIO_FLOOR are exempt (a short silent clip compresses far).
# A bigger corpus can be given as a folder, which has no limit.
MAX_EXTRACTED_BYTES = 32 << 30       # all the members extracted from one archive: 32 GiB
MAX_RATIO = 100                      # uncompressed / compressed, per zip member, or for
                                     # the whole of a compressed tar
RATIO_FLOOR = 1 << 20                # bytes: smaller members are not held to MAX_RATIO

# The first bytes of files that are archives, or compressed streams, of some kind.
MAGIC = {b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2",
         b"\xfd7zXZ\x00": "xz", b"7z\xbc\xaf\x27\x1c": "7z", b"Rar!\x1a\x07": "RAR",
         b"(\xb5/\xfd": "zstandard"}


class Member(NamedTuple):
    """One archive entry as the safety check sees it."""
    name: str
    is_file: bool
    link: str | None          # None, or what kind of link (or device) it is
    size: int = 0             # bytes once extracted, as the archive declares
    packed: int | None = None # a zip member's compressed bytes (a tar's are not its own)
    encrypted: bool = False   # a password-protected zip member


def _magic(path: Path) -> str | None:
    """What kind of archive or compressed file `path` starts as, by its first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)


def is_archive(path: Path) -> bool:
    """A zip or tar, or a file that starts as an archive (a damaged zip, a 7z): `opened`
    then says what is wrong with it."""
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path) or _magic(path) is not None


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        link = "a symbolic link" if stat.S_ISLNK(info.external_attr >> 16) else None
        yield Member(info.filename, not info.is_dir() and link is None, link,
                     info.file_size, info.compress_size, bool(info.flag_bits & 0x1))


def _tar_members(archive: tarfile.TarFile) -> Iterator[Member]:
    for info in archive.getmembers():
        link = ("a symbolic link" if info.issym() else "a hard link" if info.islnk()
                else "a device or pipe" if not (info.isfile() or info.isdir()) else None)
        yield Member(info.name, info.isfile(), link, info.size)


def _not_readable(archive_path: Path) -> str:
    """Why a file that is no zip or tar Python can open is refused."""
    kind = _magic(archive_path)
    if kind == "zip":
        return (f"{archive_path}: a damaged or truncated zip (it starts as one, but the "
                "directory at its end is missing or broken): copy or download it again")
    if kind in ("gzip", "bzip2", "xz"):
        return (f"{archive_path}: a {kind} file with no readable tar inside (damaged or "
                "truncated, or one compressed file rather than a tar): copy it again")
    if kind:
        return (f"{archive_path}: a {kind} archive; only zip and tar (.tar, .tar.gz, .tar.bz2, "
                ".tar.xz) are read: unpack it and give the folder, or repack it")
    return f"{archive_path}: not a zip or tar archive"


class _Opener:
    """The open function `opened` yields: opens a member, refusing a password-protected
    one, and knows the members' sizes for `check_sizes`."""

    def __init__(self, archive_path: Path, open_member: Callable[[str], IO[bytes]],
                 members: list[Member], compressed: bool):
        self.archive_path, self.open_member = archive_path, open_member
        self.members = {m.name: m for m in members if m.is_file}
        self.compressed = compressed          # a compressed tar: one ratio for the whole

    def __call__(self, name: str) -> IO[bytes]:
        member = self.members.get(name)
        if member is not None and member.encrypted:
            raise SourceError(f"{self.archive_path}: {name!r} is encrypted (a password-"
                              "protected zip): unzip it yourself and give the folder")
        return self.open_member(name)

    def check_sizes(self, names: list[str]) -> None:
        """SourceError naming the archive (and the member) when extracting `names` would
        pass MAX_EXTRACTED_BYTES or a member or the archive expands over MAX_RATIO times."""
        chosen = [self.members[n] for n in names if n in self.members]
        encrypted = [m.name for m in chosen if m.encrypted]
        if encrypted:
            raise SourceError(f"{self.archive_path}: {len(encrypted)} member(s) encrypted (a "
                              f"password-protected zip), e.g. {encrypted[0]!r}: unzip it "
                              "yourself and give the folder")
        total = sum(m.size for m in chosen)
        if total > MAX_EXTRACTED_BYTES:
            raise SourceError(f"{self.archive_path}: would extract {_size(total)}, over the "
                              f"limit of {_size(MAX_EXTRACTED_BYTES)} for one archive: unpack "
                              "it yourself and give the folder")
        for m in chosen:
            if m.packed is not None and m.size > RATIO_FLOOR \
                    and m.size > MAX_RATIO * max(m.packed, 1):
                raise SourceError(f"{self.archive_path}: {m.name!r} expands from "
                                  f"{_size(m.packed)} to {_size(m.size)}, over {MAX_RATIO} "
                                  "times (a zip bomb?): refused")
        if self.compressed and total > RATIO_FLOOR:
            packed = self.archive_path.stat().st_size
            if total > MAX_RATIO * max(packed, 1):
                raise SourceError(f"{self.archive_path}: expands from {_size(packed)} to "
                                  f"{_size(total)}, over {MAX_RATIO} times (a tar bomb?): "
                                  "refused")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


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
            raise SourceError(_not_readable(archive_path))
    except READ_ERRORS as err:
        raise SourceError(f"{archive_path}: not a readable archive, damaged or truncated? "
                          f"({err})") from None
    with archive:                                          # closed on every error below
        try:
            members = list(list_members(archive))
        except READ_ERRORS as err:
            raise SourceError(f"{archive_path}: not a readable archive, damaged or "
                              f"truncated? ({err})") from None
        unsafe = unsafe_members(members)
        if unsafe:
            raise SourceError(f"{archive_path}: refused, {len(unsafe)} member(s) would escape "
                              "the target folder:\n" + "\n".join(f"  - {u}" for u in unsafe))
        compressed = isinstance(archive, tarfile.TarFile) and _magic(archive_path) is not None
        yield ([m.name for m in members if m.is_file],
               _Opener(archive_path, open_member, members, compressed))


def write_members(archive_path: Path, open_member: Callable[[str], IO[bytes]],
                  chosen: dict[str, str], out_dir: Path, progress: bool = True) -> None:
    """Write each member `chosen[target]` to `out_dir/target`; the folder appears whole or
    not at all. The targets are the caller's validated names, never the member paths.
    `open_member` from `opened` first checks the limits on size (`_Opener.check_sizes`)."""
    check_sizes = getattr(open_member, "check_sizes", None)
    if check_sizes is not None:
        check_sizes(list(chosen.values()))
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

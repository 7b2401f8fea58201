"""Safe extraction of a RAVDESS zip archive.

No member may escape the target folder: an archive with an absolute path, a `..`
component or a link is refused as a whole (a genuine RAVDESS archive has none). Only
audio-only speech (`03-01-*`) in `Actor_NN/` folders is kept (one copy, see `layout`),
and the output folder appears whole or not at all.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..atomic import atomic_dir
from .layout import SourceError, select_copy


def unsafe_members(archive: zipfile.ZipFile) -> list[str]:
    """The members that could write outside the target folder, each with the reason."""
    problems = []
    for info in archive.infolist():
        name = info.filename
        path = PurePosixPath(name.replace("\\", "/"))
        mode = info.external_attr >> 16
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            problems.append(f"{name!r}: absolute path")
        elif ".." in path.parts:
            problems.append(f"{name!r}: '..' in the path")
        elif stat.S_ISLNK(mode):
            problems.append(f"{name!r}: a symbolic link")
        elif "\x00" in name:
            problems.append(f"{name!r}: NUL in the name")
    return problems


def extract_speech(archive_path: Path, out_dir: Path, progress: bool = True, log=print) -> list[Path]:
    """Extract the speech audio of a RAVDESS zip into `out_dir/Actor_NN/`.

    Returns the paths written, sorted. Raises SourceError for an unreadable or unsafe
    archive; `out_dir` is then untouched.
    """
    archive_path, out_dir = Path(archive_path), Path(out_dir)
    try:
        archive = zipfile.ZipFile(archive_path)
    except (OSError, zipfile.BadZipFile) as err:
        raise SourceError(f"{archive_path}: not a readable zip archive ({err})") from None
    with archive:
        unsafe = unsafe_members(archive)
        if unsafe:
            raise SourceError(f"{archive_path}: refused, {len(unsafe)} member(s) would escape "
                              "the target folder:\n" + "\n".join(f"  - {u}" for u in unsafe))
        files = [i.filename for i in archive.infolist() if not i.is_dir()]
        chosen = select_copy(files, str(archive_path), log=log)
        with atomic_dir(out_dir) as tmp:
            for target, member in tqdm(chosen.items(), desc="extracting", unit="file",
                                       disable=not progress):
                # The target is built from the validated Actor_NN/<name>, never from the member path.
                dest = tmp / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with archive.open(member) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as err:
                    raise SourceError(f"{archive_path}: cannot extract {member!r} ({err})") from None
    return sorted(out_dir / target for target in chosen)

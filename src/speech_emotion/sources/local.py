"""A local copy of RAVDESS: a folder, a .zip or a tar, in the layout a Kaggle or Zenodo
download has."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_dir
from . import archive
from .layout import SourceError, select_copy


def copy_corpus(source: Path, out_dir: Path, progress: bool = True, log=print) -> list[Path]:
    """Copy the speech audio of the folder, zip or tar `source` into `out_dir/Actor_NN/`.

    WAV and FLAC are copied as they are (no re-encoding). Returns the paths written, sorted.
    """
    if not str(source).strip() or str(source) == ".":
        raise SourceError("data.local_path is empty: give the folder with Actor_NN/ folders, "
                          "or a .zip or tar of one ('' would be the project itself)")
    source = Path(source).expanduser()
    if not source.exists():
        raise SourceError(f"data.local_path: {source} does not exist (give a folder with "
                          "Actor_NN/ folders, or a .zip or tar of one)")
    if source.is_file():
        if not archive.is_archive(source):
            raise SourceError(f"data.local_path: {source} is a file but not a zip or tar archive")
        return archive.extract_speech(source, out_dir, progress=progress, log=log)
    names, left_out = walk(source)
    chosen = select_copy(names, str(source), log=log, left_out=left_out)
    with atomic_dir(out_dir) as tmp:
        for target, name in tqdm(chosen.items(), desc="copying", unit="file", disable=not progress):
            dest = tmp / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, dest)            # follows links: copies the audio
    return sorted(out_dir / target for target in chosen)


def walk(source: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The files under `source` (POSIX paths relative to it, sorted), following symbolic
    links to files and folders (datasets are often linked in from elsewhere), and what is
    left out by reason: broken links, links that loop back to a folder already walked."""
    names: list[str] = []
    left_out: dict[str, list[str]] = {}
    seen = {source.resolve()}
    for folder, dirs, files in os.walk(source, followlinks=True):
        here = Path(folder)
        for d in list(dirs):
            real = (here / d).resolve()
            if real in seen:                  # a cycle, or a second way into one folder
                dirs.remove(d)
                left_out.setdefault("a symbolic link to a folder already walked (a cycle)",
                                    []).append((here / d).relative_to(source).as_posix() + "/")
            else:
                seen.add(real)
        for f in files:
            path = here / f
            rel = path.relative_to(source).as_posix()
            if path.is_file():                # follows a link to its file
                names.append(rel)
            elif path.is_symlink():
                left_out.setdefault("a broken symbolic link", []).append(rel)
            else:
                left_out.setdefault("not a regular file", []).append(rel)
    for d in list(left_out):
        left_out[d].sort()
    return sorted(names), left_out

"""A local copy of RAVDESS: a folder, a .zip or a tar, in the layout a Kaggle or Zenodo
download has."""

from __future__ import annotations

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
    source = Path(source).expanduser()
    if not source.exists():
        raise SourceError(f"data.local_path: {source} does not exist (give a folder with "
                          "Actor_NN/ folders, or a .zip or tar of one)")
    if source.is_file():
        if not archive.is_archive(source):
            raise SourceError(f"data.local_path: {source} is a file but not a zip or tar archive")
        return archive.extract_speech(source, out_dir, progress=progress, log=log)
    names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    chosen = select_copy(names, str(source), log=log)
    with atomic_dir(out_dir) as tmp:
        for target, name in tqdm(chosen.items(), desc="copying", unit="file", disable=not progress):
            dest = tmp / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, dest)
    return sorted(out_dir / target for target in chosen)

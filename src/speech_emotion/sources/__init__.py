"""Where the audio comes from: `synthetic` (default, offline), `zenodo` or `local`.

`populate(params.data, out_dir, downloads_dir)` fills `out_dir` with
`Actor_NN/03-01-EE-II-SS-RR-AA.<wav|flac>`; the output appears whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

from ..params import DataParams
from . import archive, local, synthetic, zenodo
from .layout import SourceError

__all__ = ["populate", "SourceError", "archive", "local", "synthetic", "zenodo"]


def populate(data: DataParams, out_dir: Path, downloads_dir: Path,
             progress: bool = True) -> list[Path]:
    """Fill `out_dir` from the source `data.source`; returns the audio files written.

    zenodo keeps the verified archive in `downloads_dir` so that a second run does not
    download it again.
    """
    out_dir = Path(out_dir)
    if data.source == "synthetic":
        from ..atomic import atomic_dir

        with atomic_dir(out_dir) as tmp:
            synthetic.generate(tmp, data.synthetic.actors, data.synthetic.seed, progress=progress)
        return sorted(out_dir.glob("Actor_*/*.wav"))
    if data.source == "local":
        if data.local_path is None:
            raise SourceError("data.source is 'local' but data.local_path is null: set it to a "
                              "folder with Actor_NN/ folders, or a .zip or tar of one, e.g. "
                              "dvc exp run -S data.source=local "
                              "-S data.local_path=/path/to/ravdess")
        return local.copy_corpus(Path(data.local_path), out_dir, progress=progress)
    if data.source == "zenodo":
        path = zenodo.fetch(data.zenodo.url, data.zenodo.md5, Path(downloads_dir),
                            retries=data.zenodo.retries, timeout_s=data.zenodo.timeout_s,
                            progress=progress)
        return archive.extract_speech(path, out_dir, progress=progress)
    raise SourceError(f"data.source: unknown source {data.source!r} (synthetic | zenodo | local)")

"""Which files of a folder tree or an archive are the corpus.

A user's copy of RAVDESS is `Actor_NN/` folders, possibly nested one level deeper, and
sometimes twice: the Kaggle archive holds `Actor_NN/` and `audio_speech_actors_01-24/Actor_NN/`.
Only audio-only speech (`03-01-*.wav|flac`) inside an `Actor_NN/` folder is kept, and of
several copies exactly one is taken: never both.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import PurePosixPath

from ..ravdess import ACTOR_DIR, is_speech_audio_name


class SourceError(RuntimeError):
    """The data source cannot deliver the corpus; the message says why and what to do."""


SHOWN = 5      # names listed per reason a file is left out


def select_copy(names: list[str], where: str, log=print,
                left_out: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Map `Actor_NN/<file>` (the raw layout) -> the member/path name to take it from.

    `names` are POSIX paths relative to the root of the folder or archive. Files that
    are not `03-01-*` audio in an `Actor_NN/` folder are left out, counted on stderr by
    reason with the first names (`left_out` adds what the caller left out before, e.g.
    broken links). When the actor folders occur under several parent folders (copies), the copy
    with the most files is taken (then the shallowest, then the first by name).
    """
    copies: dict[str, dict[str, str]] = defaultdict(dict)
    skipped: dict[str, list[str]] = defaultdict(list, left_out or {})
    for name in names:
        path = PurePosixPath(name)
        if path.name.startswith("03-01-") and not is_speech_audio_name(path.name):
            skipped["format not supported (WAV or FLAC)"].append(name)
            continue
        if not is_speech_audio_name(path.name):
            skipped["not audio-only speech (03-01-*)"].append(name)
            continue
        if len(path.parts) < 2 or not ACTOR_DIR.match(path.parts[-2]):
            skipped["not in an Actor_NN/ folder"].append(name)
            continue
        prefix = "/".join(path.parts[:-2])
        copies[prefix][f"{path.parts[-2]}/{path.name}"] = name
    if not copies:
        raise SourceError(f"{where}: no RAVDESS speech audio found (expected "
                          "Actor_NN/03-01-EE-II-SS-RR-AA.wav or .flac, possibly one folder deeper)")
    ranked = sorted(copies, key=lambda p: (-len(copies[p]), p.count("/") + (p != ""), p))
    chosen = ranked[0]
    for reason, left in skipped.items():
        shown = ", ".join(left[:SHOWN]) + (", ..." if len(left) > SHOWN else "")
        log(f"{where}: left out {len(left)} file(s): {reason}: {shown}", file=sys.stderr)
    if len(ranked) > 1:
        others = ", ".join(f"{p or '.'}/ ({len(copies[p])} files)" for p in ranked[1:])
        log(f"{where}: several copies of the actor folders; took {chosen or '.'}/ "
            f"({len(copies[chosen])} files), ignored {others}", file=sys.stderr)
    return dict(sorted(copies[chosen].items()))

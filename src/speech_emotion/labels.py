"""The `data.csv` table: scan the raw corpus, validate it, read facts from the audio,
mark twins; and the intensity split.

Validation collects every problem before failing, so one run names every offending file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import audio
from .ravdess import (
    ACTOR_DIR,
    ACTORS,
    AUDIO_SUFFIXES,
    CODE_COLUMNS,
    INTENSITIES,
    NEUTRAL,
    RavdessNameError,
    Utterance,
    actor_dir,
    full_corpus,
    parse_name,
)

COLUMNS = (
    "path", "stem", *CODE_COLUMNS, "emotion_name", "intensity_name", "statement_text", "gender",
    "sample_rate", "channels", "frames", "duration_s", "subtype", "md5", "duplicate",
)


class LabelsError(ValueError):
    """The raw corpus has problems; the message lists every offending file."""

    def __init__(self, root: Path, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{root}: {len(problems)} problem(s) in the raw corpus:\n{lines}")


def scan(raw_root: Path) -> tuple[list[tuple[str, Utterance]], list[str]]:
    """The utterance files under `raw_root` (POSIX path relative to it, codes) and the
    problems found in names and layout. Nothing is read from the audio here."""
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise LabelsError(raw_root, ["no such folder (run the download stage first)"])
    found, problems = [], []
    seen: dict[str, str] = {}
    for path in sorted(p for p in raw_root.rglob("*") if not p.is_dir()):
        rel = path.relative_to(raw_root).as_posix()
        parts = path.relative_to(raw_root).parts
        if len(parts) != 2 or not ACTOR_DIR.match(parts[0]):
            problems.append(f"{rel}: not inside an Actor_NN/ folder at the top level")
            continue
        if not path.name.lower().endswith(AUDIO_SUFFIXES):
            problems.append(f"{rel}: not an audio file ({', '.join(AUDIO_SUFFIXES)})")
            continue
        try:
            utt = parse_name(path.name)
        except RavdessNameError as err:
            problems.append(f"{parts[0]}/{err}")
            continue
        if actor_dir(utt.actor) != parts[0]:
            problems.append(f"{rel}: actor code {utt.actor:02d} disagrees with folder {parts[0]}")
            continue
        if utt.stem in seen:
            problems.append(f"{rel}: the same utterance as {seen[utt.stem]}")
            continue
        seen[utt.stem] = rel
        found.append((rel, utt))
    if not found and not problems:
        problems.append("no audio files found (expected Actor_NN/03-01-*.wav|flac)")
    return found, problems


def build_table(raw_root: Path, progress: bool = False) -> pd.DataFrame:
    """One row per utterance under `raw_root`, sorted by path, columns `COLUMNS`.

    Raises LabelsError listing every offending file: names outside the scheme, codes out
    of range, song or video files, strong neutral, an actor folder that disagrees with the
    actor code, unreadable, truncated or empty audio.
    """
    raw_root = Path(raw_root)
    found, problems = scan(raw_root)
    rows = []
    for rel, utt in tqdm(found, desc="reading audio", unit="file", disable=not progress):
        try:
            meta = audio.info(raw_root / rel)
            md5 = audio.content_md5(raw_root / rel)
        except audio.AudioError as err:
            problems.append(str(err).replace(str(raw_root / rel), rel, 1))
            continue
        rows.append({
            "path": rel, "stem": utt.stem,
            **{column: getattr(utt, column) for column in CODE_COLUMNS},
            "emotion_name": utt.emotion_name, "intensity_name": utt.intensity_name,
            "statement_text": utt.statement_text, "gender": utt.gender,
            "sample_rate": meta.sample_rate, "channels": meta.channels, "frames": meta.frames,
            "duration_s": round(meta.duration_s, 6), "subtype": meta.subtype, "md5": md5,
        })
    if problems:
        raise LabelsError(raw_root, problems)
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "duplicate"])
    table["duplicate"] = table["md5"].duplicated(keep=False)
    return table.sort_values("path", ignore_index=True)[list(COLUMNS)]


def coverage(table: pd.DataFrame) -> list[str]:
    """What the table lacks against the full corpus (24 actors x 60 utterances): one line
    for the absent actors and one per incomplete actor; [] when nothing is missing.
    The pipeline runs on what is there (folds skip absent test actors, saying so)."""
    present = {utt.stem for utt in map(parse_name, table["stem"])}
    expected = full_corpus()
    actors = set(int(a) for a in table["actor"])
    notes = []
    absent = [a for a in ACTORS if a not in actors]
    if absent:
        notes.append(f"{len(absent)} of {len(ACTORS)} actors absent: {_ranges(absent)}")
    for actor in sorted(actors):
        missing = [u.stem for u in expected if u.actor == actor and u.stem not in present]
        if missing:
            total = sum(u.actor == actor for u in expected)
            shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            notes.append(f"{actor_dir(actor)}: {total - len(missing)} of {total} utterances "
                         f"(missing {shown})")
    return notes


def _ranges(numbers: list[int]) -> str:
    """[3, 7, 8, 9] -> '03, 07-09'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]:02d}" if len(r) == 1 else f"{r[0]:02d}-{r[-1]:02d}" for r in runs)


def twins(table: pd.DataFrame) -> list[list[str]]:
    """Groups of paths whose audio is identical (same `md5`)."""
    dup = table[table["duplicate"]]
    return [sorted(group["path"]) for _, group in dup.groupby("md5", sort=True)]


def read_table(path: Path) -> pd.DataFrame:
    """Read data.csv (or a subset of it) with the column types of the contract."""
    table = pd.read_csv(path, dtype={"md5": str, "stem": str, "path": str})
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    return table


def split_by_intensity(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows of each intensity: {"strong": ..., "normal": ...}, same columns, same order.

    Neutral exists only at normal intensity, so the strong set has 7 classes.
    """
    parts = {name: table[table["intensity"] == code].reset_index(drop=True)
             for code, name in INTENSITIES.items()}
    strong_neutral = parts["strong"]["emotion"] == NEUTRAL
    if strong_neutral.any():
        raise ValueError("strong neutral rows in the table: "
                         + ", ".join(parts["strong"].loc[strong_neutral, "path"]))
    return {"strong": parts["strong"], "normal": parts["normal"]}

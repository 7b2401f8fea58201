"""Scoring the trained cells on labelled corpora that are not RAVDESS (`external.corpora`).

A corpus is the user's own copy (nothing is downloaded): a folder, or a zip or tar of one,
whose file names give the emotion by a preset, or any audio listed in a CSV:

    preset   file names (path relative to the corpus folder)   codes -> RAVDESS emotion
    tess     {OAF|YAF}_{word}_{emotion}.wav                    fear -> fearful,
                                                               ps (pleasant surprise) -> surprised
    savee    {DC|JE|JK|KL}_{code}NN.wav, or {SPK}/{code}NN.wav  a d f h n sa su
             (the original AudioData/{SPK}/ folders)
    crema_d  {actor}_{sentence}_{emotion}_{level}.wav          ANG DIS FEA HAP NEU SAD
    csv      a CSV with a header `path,emotion[,speaker]`       RAVDESS's own names

At any depth under the folder, case aside. Hidden files, `__MACOSX/` and files that are not
audio (`AUDIO_SUFFIXES`) are passed over; an audio file whose name does not fit the preset,
and one utterance found twice (two copies), are errors that list the first offenders.

A cell (`models/<model>-<subset>/`) is scored as `predict` scores a file: its fold models'
class probabilities averaged (`predict.file_inputs` once per file and front end, then
`predict.score_inputs`, per speaker under `train.speaker_norm`), then

    (C,) over the cell's labels --restrict to S--> the shared class with the highest probability

S, the shared classes, are the cell's labels that the corpus has (at least two, or an error).
Restricting is zeroing the other classes' probabilities and renormalising, so the
prediction is the argmax over S: a corpus without calm never gets calm predicted.
Utterances of a class the cell does not have (neutral, for a `strong` cell) are left out
and counted (`left_out`). The figures (`metrics.summarise_corpus`: UA, WA, macro-F1, per
class, per speaker) are over S only.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from .params import CorpusParams
from .ravdess import EMOTION_NAMES

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".aifc")
SHOWN = 5          # offending files listed in an error, then how many more


class CorpusError(ValueError):
    """A corpus that cannot be scored; the message names the corpus and the first offenders."""


def listing(items: Sequence[str], shown: int = SHOWN) -> str:
    """`a, b, c, d, e and 7 more`."""
    head = ", ".join(items[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


# ---------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """How a corpus's file names give the speaker and the emotion."""

    layout: str                  # the names, for people (errors, docs)
    patterns: tuple[str, ...]    # regexes on the relative path; CODES stands for the emotion
                                 # codes; groups: speaker, item (the utterance within the
                                 # speaker's), code
    emotions: dict[str, str]     # code (lower case) -> RAVDESS emotion name

    def parse(self, name: str) -> tuple[str, str, str] | None:
        """`(speaker, emotion, key)` of a relative path, None when it does not fit; `key`
        names the utterance whatever folder holds it (two copies have the same key)."""
        for pattern in self.compiled:
            match = pattern.search(name)
            if match:
                speaker = match["speaker"].upper()
                return (speaker, self.emotions[match["code"].lower()],
                        f"{speaker}_{match['item'].lower()}")
        return None

    @functools.cached_property
    def compiled(self) -> tuple[re.Pattern[str], ...]:
        codes = "|".join(sorted(map(re.escape, self.emotions), key=len, reverse=True))
        return tuple(re.compile(p.replace("CODES", codes), re.IGNORECASE)
                     for p in self.patterns)


PRESETS = {
    "tess": Preset(
        "{OAF|YAF}_{word}_{emotion}.wav",
        (r"(?:^|/)(?P<speaker>OAF|YAF)_(?P<item>[a-z]+_(?P<code>CODES))\.wav$",),
        {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
         "neutral": "neutral", "ps": "surprised", "sad": "sad"}),
    "savee": Preset(
        "{DC|JE|JK|KL}_{a|d|f|h|n|sa|su}NN.wav or AudioData/{DC|JE|JK|KL}/{code}NN.wav",
        (r"(?:^|/)(?P<speaker>DC|JE|JK|KL)[_/](?P<item>(?P<code>CODES)\d{2})\.wav$",),
        {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral",
         "sa": "sad", "su": "surprised"}),
    "crema_d": Preset(
        "{actor}_{sentence}_{ANG|DIS|FEA|HAP|NEU|SAD}_{LO|MD|HI|XX}.wav",
        (r"(?:^|/)(?P<speaker>\d{4})_(?P<item>[a-z]{3}_(?P<code>CODES)_(?:lo|md|hi|xx))\.wav$",),
        {"ang": "angry", "dis": "disgust", "fea": "fearful", "hap": "happy", "neu": "neutral",
         "sad": "sad"}),
}
CSV_COLUMNS = ("path", "emotion")          # required; `speaker` is optional



# ---------------------------------------------------------------- corpora
@dataclass(frozen=True)
class Recording:
    path: str                    # relative to the corpus root (POSIX), or absolute (csv)
    emotion: str                 # a RAVDESS emotion name
    speaker: str                 # "" when not known (a csv without the column)


@dataclass(frozen=True)
class Corpus:
    name: str
    root: Path                   # where the recordings' paths start
    recordings: list[Recording]

    @property
    def classes(self) -> list[str]:
        """The emotions present, in RAVDESS's order."""
        present = {r.emotion for r in self.recordings}
        return [name for name in EMOTION_NAMES if name in present]


def is_candidate(name: str) -> bool:
    """An audio file to judge: not hidden, not macOS's `__MACOSX/` shadow, an audio suffix."""
    parts = PurePosixPath(name).parts
    return (not any(part.startswith(".") or part == "__MACOSX" for part in parts)
            and name.lower().endswith(AUDIO_SUFFIXES))


def parse_names(names: Sequence[str], preset: str, where: str) -> list[Recording]:
    """The recordings among `names` (POSIX paths relative to the corpus root), by `preset`.

    Raises CorpusError listing the first audio files that do not fit the preset, the first
    utterances found twice, or saying that there is no audio at all.
    """
    rules = PRESETS[preset]
    recordings, offending, seen, twice = [], [], {}, []
    for name in sorted(names):
        if not is_candidate(name):
            continue
        parsed = rules.parse(name)
        if parsed is None:
            offending.append(name)
            continue
        speaker, emotion, key = parsed
        if key in seen:
            twice.append(f"{seen[key]} = {name}")
            continue
        seen[key] = name
        recordings.append(Recording(name, emotion, speaker))
    if offending:
        raise CorpusError(f"{where}: {len(offending)} audio file(s) do not fit the {preset} "
                          f"preset ({rules.layout}): {listing(offending)}")
    if twice:
        raise CorpusError(f"{where}: {len(twice)} utterance(s) found twice (two copies of the "
                          f"corpus? give the folder of one): {listing(twice)}")
    if not recordings:
        raise CorpusError(f"{where}: no audio files ({rules.layout})")
    return recordings


def read_csv(path: Path, where: str) -> list[Recording]:
    """The recordings of a CSV with a header `path,emotion[,speaker]` (other columns are
    passed over); relative paths start at the CSV's folder. Every emotion must be a RAVDESS
    emotion name, no row may have more fields than the header (a trailing comma), and no
    recording may be listed twice, however its path is spelt (`a.wav`, `./a.wav`, a link to
    it): raises CorpusError naming the first offending lines."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]   # line_num: the row's last line
            header = [(c or "").strip() for c in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CorpusError(f"{where}: {path}: not a readable CSV ({err})") from None
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise CorpusError(f"{where}: {path}: the header must name the columns path,emotion"
                          f"[,speaker]; {', '.join(missing)} missing (header: {header})")
    extra = [f"line {line}" for line, row in rows if None in row]   # DictReader's restkey
    if extra:
        raise CorpusError(f"{where}: {path}: {len(extra)} row(s) with more fields than the "
                          f"header's {len(header)} ({','.join(header)}; a trailing comma?): "
                          f"{listing(extra)}")
    recordings, bad, seen, twice = [], [], {}, []
    for line, row in rows:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        emotion = row["emotion"].lower()
        if not row["path"] or emotion not in EMOTION_NAMES:
            bad.append(f"line {line}: {row['path'] or '(no path)'},{row['emotion']}")
            continue
        same = _same_file(path.parent, row["path"])
        if same in seen:
            first, spelt = seen[same]
            twice.append(f"line {line}: {row['path']} = line {first}: {spelt}")
            continue
        seen[same] = (line, row["path"])
        recordings.append(Recording(row["path"], emotion, row.get("speaker", "")))
    if bad:
        raise CorpusError(f"{where}: {path}: {len(bad)} row(s) without a path or with an "
                          f"emotion that is not one of RAVDESS's ({', '.join(EMOTION_NAMES)}; "
                          f"map yours to these, leave out rows of other classes): {listing(bad)}")
    if twice:
        raise CorpusError(f"{where}: {path}: {len(twice)} recording(s) listed twice (each "
                          f"line once, whatever the spelling of its path): {listing(twice)}")
    if not recordings:
        raise CorpusError(f"{where}: {path}: no rows")
    absent = [r.path for r in recordings if not (path.parent / r.path).is_file()]
    if absent:
        raise CorpusError(f"{where}: {len(absent)} file(s) of {path} not found (relative paths "
                          f"start at the CSV's folder): {listing(absent)}")
    return recordings


def _same_file(folder: Path, name: str) -> Path:
    """What a CSV row's path names, whatever its spelling: `./`, `//`, `..` and links
    resolved (an absolute path stays itself)."""
    try:
        return (folder / name).resolve()
    except (OSError, RuntimeError):      # a link loop: the path as written, normalised
        return Path(os.path.normpath(folder / name))


@contextlib.contextmanager
def open_corpus(corpus: CorpusParams, progress: bool = False) -> Iterator[Corpus]:
    """The recordings of one `external.corpora` entry. An archive's audio is extracted (the
    same safety checks as RAVDESS's) into a temporary folder, removed afterwards."""
    from .sources import archive, local
    from .sources.layout import SourceError

    where = f"external.corpora: {corpus.name}"
    path = Path(corpus.path).expanduser()
    if not path.exists():
        raise CorpusError(f"{where}: {path} does not exist (the corpus must be obtained by you: "
                          "a folder, a .zip or a tar; docs/EXTERNAL.md)")
    if corpus.preset == "csv":
        if not path.is_file():
            raise CorpusError(f"{where}: preset csv needs path to be the CSV file, not {path}")
        yield Corpus(corpus.name, path.parent, read_csv(path, where))
        return
    if path.is_dir():
        names, _ = local.walk(path)
        yield Corpus(corpus.name, path, parse_names(names, corpus.preset, f"{where}: {path}"))
        return
    if not archive.is_archive(path):
        raise CorpusError(f"{where}: {path} is a file but not a zip or tar (preset "
                          f"{corpus.preset} needs a folder or an archive of one)")
    try:
        with archive.opened(path) as (files, open_member), \
                tempfile.TemporaryDirectory(prefix=f"external-{corpus.name}-") as tmp:
            recordings = parse_names(files, corpus.preset, f"{where}: {path}")
            root = Path(tmp) / "corpus"
            archive.write_members(path, open_member, {r.path: r.path for r in recordings},
                                  root, progress)
            yield Corpus(corpus.name, root, recordings)
    except SourceError as err:
        raise CorpusError(f"{where}: {err}") from None


def unreadable(corpus: Corpus) -> list[str]:
    """The audio errors (each naming its file) of the recordings that cannot be scored:
    those soundfile cannot open (`audio.info`, with its bounds on rate and length) and
    float files holding NaN or infinite samples (read BLOCK_FRAMES at a time: the memory
    stays bounded), so that a bad file stops the stage before anything is scored."""
    from . import audio

    problems = []
    for recording in corpus.recordings:
        path = corpus.root / recording.path
        try:
            if audio.info(path).subtype in FLOAT_SUBTYPES:
                _check_finite(path)
        except audio.AudioError as err:
            problems.append(str(err))
    return problems


FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")    # the encodings that can hold NaN or infinity
BLOCK_FRAMES = 1 << 16                  # frames a block in `unreadable` (x channels x 4 bytes)


def _check_finite(path: Path) -> None:
    """AudioError (audio.read's words) when a sample of `path` is NaN or infinite, as
    float32 (what audio.read gives: a double past its range is infinite too)."""
    import soundfile as sf

    from .audio import AudioError

    try:
        with sf.SoundFile(str(path)) as handle:
            for block in handle.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: audio holds NaN or infinite samples")
    except AudioError:
        raise
    except Exception as err:          # soundfile raises several types for broken files
        raise AudioError(f"{path}: unreadable audio ({err})") from None


# ---------------------------------------------------------------- scoring
@dataclass
class Cell:
    """A trained cell as predict loads it."""

    name: str                    # <model>-<subset>
    labels: list[str]            # its classes, in class order
    folds: list[int]             # the fold models averaged
    loaded: Any                  # what predict scores with


def load_cell(name: str, folder: Path) -> Cell:
    """The fold models of `folder` (`predict.load_cell_models`, with its checks)."""
    from . import predict

    models = predict.load_cell_models(folder)
    return Cell(name, models.labels, models.folds, models)


def front_end_key(cell: Cell) -> str:
    """What a cell's inputs depend on: the encoder's weights and padding for a head, the
    feature params for a log-mel model. Cells with one key share one pass over the files."""
    models = cell.loaded
    attrs = (models.encode_attrs if models.head else dataclasses.asdict(models.feature_params))
    return json.dumps({"head": models.head, "grid": models.head and models.grid,
                       **{k: attrs[k] for k in sorted(attrs)}},
                      default=str)


FILES_PER_TASK = 8     # recordings a worker of `corpus_inputs` takes at a time


def corpus_inputs(corpus: Corpus, cell: Cell, progress: bool = False,
                  workers: int | None = None) -> list:
    """Every recording of `corpus` read and turned into `cell`'s inputs, once (predict's
    `file_inputs`: windows, then log-mel or the encoder). AudioError names a bad file.

    `workers` forked processes (None: one per core) take `FILES_PER_TASK` recordings at a
    time; every file is made with one torch thread, in a worker or here, so the inputs are
    the same whatever the number of workers."""
    import torch
    from tqdm import tqdm

    from . import features, predict
    from .pool import default_workers, fork_map

    models = cell.loaded
    extractor = (predict.head_encoder(models.encode_attrs) if models.head
                 else features.Extractor(models.feature_params))
    paths = [corpus.root / r.path for r in corpus.recordings]
    tasks = [paths[i:i + FILES_PER_TASK] for i in range(0, len(paths), FILES_PER_TASK)]
    workers = min(default_workers() if workers is None else workers, len(tasks))

    def task(k: int) -> list:
        torch.set_num_threads(1)
        return [predict.file_inputs(path, models, extractor) for path in tasks[k]]

    threads = torch.get_num_threads()
    inputs: list = []
    with tqdm(total=len(paths), desc=f"{corpus.name}: " + ("encoder" if models.head
                                                           else "log-mel"),
              unit="file", disable=not progress, file=sys.stderr) as bar:
        try:
            for made in (fork_map(task, len(tasks), workers) if workers > 1
                         else map(task, range(len(tasks)))):
                inputs += made
                bar.update(len(made))
        finally:
            torch.set_num_threads(threads)
    return inputs


def speakers_of(corpus: Corpus) -> list[str]:
    """Who spoke each recording, for `train.speaker_norm`: the corpus's speaker where it
    names one, else the corpus as a whole (one reference for every unnamed recording)."""
    return [r.speaker or f"({corpus.name})" for r in corpus.recordings]


def shared_classes(labels: Sequence[str], corpus: Corpus, cell: str) -> list[str]:
    """The cell's labels that the corpus has, in the cell's order; at least two."""
    shared = [label for label in labels if label in corpus.classes]
    if len(shared) < 2:
        raise CorpusError(f"external.corpora: {corpus.name}: shares {shared or 'no class'} "
                          f"with the cell {cell} (its classes {list(labels)}, the corpus's "
                          f"{corpus.classes}); scoring needs at least two shared classes")
    return shared


def restrict(probabilities: np.ndarray, labels: Sequence[str],
             shared: Sequence[str]) -> list[str]:
    """`(N, C)` probabilities over `labels` -> the predicted class of each row among
    `shared` only: the argmax of the shared columns (zeroing the others and renormalising
    would pick the same); a tie goes to the first in `labels` order."""
    columns = [list(labels).index(label) for label in shared]           # in labels order
    picked = np.asarray(probabilities)[:, columns].argmax(axis=1)       # (N,)
    return [shared[i] for i in picked]


@dataclass(frozen=True)
class CorpusScores:
    metrics: dict[str, Any]      # metrics/external/<corpus>/<cell>.json (without machine)
    confusion: list[dict[str, str]]  # plots/external/<corpus>/<cell>.json


def score_corpus(corpus: Corpus, cells: Sequence[Cell], shifts: Sequence[int],
                 progress: bool = False, prior_correction: bool = False
                 ) -> Iterator[tuple[Cell, CorpusScores]]:
    """Each cell's scores on `corpus`, in `cells` order. Every check (shared classes for
    every cell, every file readable) runs before the first file is scored.
    `prior_correction`: the metrics also hold `prior_corrected`, the figures after EM
    re-estimation of the corpus's class priors (`priors.em_priors`), which looks at every
    recording's probabilities (never a label) and so is not what one file gets."""

    from .metrics import confusion_records, figures, rounded, summarise_corpus
    from .priors import em_priors

    shared = {cell.name: shared_classes(cell.labels, corpus, cell.name) for cell in cells}
    problems = unreadable(corpus)
    if problems:
        raise CorpusError(f"external.corpora: {corpus.name}: {len(problems)} unreadable "
                          "file(s):\n" + "\n".join(f"  - {p}" for p in problems[:SHOWN])
                          + (f"\n  ... and {len(problems) - SHOWN} more"
                             if len(problems) > SHOWN else ""))
    from . import predict

    inputs: dict[str, list] = {}          # front end -> every recording's inputs, made once
    speakers = speakers_of(corpus)
    for cell in cells:
        key = front_end_key(cell)
        if key not in inputs:
            inputs[key] = corpus_inputs(corpus, cell, progress)
        # every recording of a speaker, whatever its class, is that speaker's unlabelled
        # audio: the statistics of train.speaker_norm (no label reaches them)
        scored = predict.score_inputs(cell.loaded, inputs[key], shifts, speakers)
        kept = [i for i, r in enumerate(corpus.recordings) if r.emotion in shared[cell.name]]
        left_out = Counter(r.emotion for r in corpus.recordings
                           if r.emotion not in shared[cell.name])
        probabilities = np.array([[scored[i].probabilities[label] for label in cell.labels]
                                  for i in kept])                       # (N, C)
        kept = [corpus.recordings[i] for i in kept]
        table = pd.DataFrame({"speaker": [r.speaker for r in kept],
                              "actual": [r.emotion for r in kept],
                              "predicted": restrict(probabilities, cell.labels,
                                                    shared[cell.name])})
        metrics = {**summarise_corpus(table, shared[cell.name]), "corpus": corpus.name,
                   "cell": cell.name, "shared_classes": shared[cell.name],
                   "left_out": {name: left_out[name] for name in EMOTION_NAMES
                                if left_out[name]},
                   "fold_models": cell.folds}
        if prior_correction:
            columns = [list(cell.labels).index(label) for label in shared[cell.name]]
            priors, adjusted, iterations = em_priors(probabilities[:, columns])
            corrected = [shared[cell.name][i] for i in adjusted.argmax(axis=1)]
            metrics["prior_corrected"] = rounded({
                **figures(table["actual"], corrected),
                "priors": dict(zip(shared[cell.name], priors.tolist(), strict=True)),
                "iterations": iterations})
        yield cell, CorpusScores(metrics, confusion_records(table))

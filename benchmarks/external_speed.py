"""The `external` stage's speed: each file read and encoded once per front end, shared by
every cell, in worker processes over every core, against the earlier way (each file read,
resampled and encoded again for every cell, in one process) and against the shared way in
one process; measured in one run on one stand-in corpus.

    python benchmarks/external_speed.py --corpus ../shared/ravdess-dev --files 200
    python benchmarks/external_speed.py --corpus ../shared/ravdess-dev --cells whisper_mlp-all \
        whisper_mlp-strong whisper_mlp-normal cnn-all

The stand-in corpus: the first `--files` RAVDESS files of `--corpus` (a folder in RAVDESS
layout), listed in a CSV with their emotion and actor, scored by the trained cells of
`--models` (a `dvc repro` leaves them in models/). Each way runs in a fresh process (the
encoder's kernels for each input length are built on first use, so a second pass in the
same process would be flattered). Prints seconds for each way and their ratio, and checks
that both give the same probabilities.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from speech_emotion import external, features, predict
from speech_emotion.external import Corpus, Recording
from speech_emotion.pool import default_workers
from speech_emotion.ravdess import parse_name

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("earlier", "shared-1", "shared")


def stand_in(folder: Path, count: int) -> Corpus:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac")
                   and p.name.startswith("03-01-"))[:count]
    recordings = []
    for path in files:
        u = parse_name(path)
        recordings.append(Recording(str(path.relative_to(folder)), u.emotion_name,
                                    f"{u.actor:02d}"))
    return Corpus("stand-in", folder, recordings)


def earlier(corpus: Corpus, cells, shifts) -> dict[str, np.ndarray]:
    """Every cell on its own: its own extractor, every file read and encoded again."""
    out = {}
    for cell in cells:
        models = cell.loaded
        extractor = (predict.head_encoder(models.encode_attrs) if models.head
                     else features.Extractor(models.feature_params))
        scored = [predict.predict_file(corpus.root / r.path, models, extractor, shifts=shifts)
                  for r in corpus.recordings]
        out[cell.name] = np.array([[p.probabilities[label] for label in cell.labels]
                                   for p in scored])
    return out


def shared(corpus: Corpus, cells, shifts, workers: int | None = None) -> dict[str, np.ndarray]:
    """The external stage's way: inputs once per front end (in `workers` processes; None:
    one per core), then every cell."""
    out = {}
    inputs: dict[str, list] = {}
    for cell in cells:
        key = external.front_end_key(cell)
        if key not in inputs:
            inputs[key] = external.corpus_inputs(corpus, cell, workers=workers)
        scored = predict.score_inputs(cell.loaded, inputs[key], shifts)
        out[cell.name] = np.array([[p.probabilities[label] for label in cell.labels]
                                   for p in scored])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--cells", nargs="+", default=["whisper_mlp-all", "whisper_mlp-strong",
                                                       "whisper_mlp-normal"])
    parser.add_argument("--shifts", type=int, nargs="+", default=[0])
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    corpus = stand_in(args.corpus, args.files)
    if args.way:                      # one way, in a process of its own: no warm caches
        cells = [external.load_cell(name, args.models / name) for name in args.cells]
        start = time.perf_counter()
        scores = (earlier(corpus, cells, args.shifts) if args.way == "earlier" else
                  shared(corpus, cells, args.shifts, 1 if args.way == "shared-1" else None))
        np.savez(args.save, seconds=time.perf_counter() - start, **scores)
        return 0
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in WAYS:                     # each in a fresh process: the encoder's kernels
            save = Path(tmp) / f"{way}.npz"  # for each input length are built anew in both
            subprocess.run([sys.executable, __file__, "--corpus", str(args.corpus),
                            "--files", str(args.files), "--models", str(args.models),
                            "--cells", *args.cells, "--shifts", *map(str, args.shifts),
                            "--way", way, "--save", str(save)], check=True)
            with np.load(save) as data:
                runs[way] = {k: data[k] for k in data.files}
    seconds = {way: float(runs[way]["seconds"]) for way in WAYS}
    # each file its own speaker in every way, so a speaker-normalised cell agrees too
    worst = max(float(np.abs(runs["earlier"][c] - runs[way][c]).max())
                for c in args.cells for way in WAYS)
    print(f"{len(corpus.recordings)} files, cells {', '.join(args.cells)}")
    print(f"each cell reads and encodes every file (one process): {seconds['earlier']:.1f} s")
    print(f"once per front end, shared by the cells, one process: {seconds['shared-1']:.1f} s")
    print(f"the same in {default_workers()} worker processes (the stage): "
          f"{seconds['shared']:.1f} s")
    print(f"ratio: {seconds['earlier'] / seconds['shared']:.2f}x the earlier way "
          f"({seconds['earlier'] / seconds['shared-1']:.2f}x from sharing, "
          f"{seconds['shared-1'] / seconds['shared']:.2f}x from the workers); "
          f"largest probability difference {worst:.1e}")
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())

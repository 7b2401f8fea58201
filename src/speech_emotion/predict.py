"""Score new recordings with a trained model: the emotion and every class's probability.

    python -m speech_emotion.predict FILE [FILE ...] [--model models/<model>-<subset>] [--json]
    speech-emotion predict FILE [FILE ...] ...

Any sample rate from 1 kHz to 768 kHz, mono or stereo, WAV / FLAC / OGG, up to an hour
long (`audio.check_header`: other files are refused unread). Each file goes through
exactly the feature code of the pipeline (`speech_emotion.features`) with the feature
params stored in the checkpoint, and the model's own normalisation statistics:

    file --load_wave--> (samples,) mono at the model's sample rate
         --windows----> (W, S): the training clip (`fix_length`) when the audio fits in
                        one clip; longer audio (after the same silence trim or offset)
                        is cut into clip-long windows, `hop` apart, the last one flush
                        with the end
         --Extractor--> (W, F, T) --each fold model--> (W, C) probabilities (averaged
                        over time-shifted copies: `--shifts`, by default `evaluate.shifts`
                        of ./params.yaml, or of `--params`)
         --mean over windows and fold models--> (C,)

A head over the pretrained encoder (whisper_mlp, ...) pools each window's encoder frames
instead: audio up to `HEAD_WINDOW_S` (5.5 s, longer than any utterance it was trained on)
in one window, as the encode stage did, longer audio in windows of that length.

A model trained with `train.speaker_norm` standardises each speaker by that speaker's own
statistics before its training statistics. `--speaker` says that the files are one
speaker's: their windows together give the statistics (the more files, and the more
emotions among them, the better). Without it each file is its own speaker, its statistics
shrunk toward the training statistics by the model's `prior` (utterance-only).

The fold models of a model folder (`CellModels`) are scored alike and their probabilities
averaged (a checkpoint trained with `train.ensemble` > 1 is itself an ensemble, of seeds,
and loads as `models.ensemble.SeedEnsemble`, so its members count as one fold model). The
checkpoints must agree on labels and feature params; `--params` also
refuses a model whose feature params differ from a params.yaml's `features` section.
An unreadable file gets a one-line error naming it on stderr and a non-zero exit status;
the other files are still scored. A directory stands for the audio files in it (any
depth, sorted). Audio with nothing to judge (no frame above the silence threshold, shorter
than one analysis frame, samples outside [-1, 1]) is scored with a warning, on stderr and
in the JSON (`warnings`), and does not change the exit status. At most `MAX_WINDOWS`
windows are scored per file (spread over longer audio), so memory stays bounded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import audio, features, paths
from .audio import AudioError
from .params import HEAD_MODELS, FeatureParams
from .store import feature_differences

DEFAULT_MODEL = paths.model_dir("cnn", "all")
DECIMALS = 4
AUDIO_SUFFIXES = (".flac", ".ogg", ".wav")  # what a directory argument is searched for
MAX_WINDOWS = 256           # per file: (W, S) float32 at 16 kHz, 3 s clips = 49 MB at most
EXTRACT_BATCH = 64          # windows per Extractor call
SILENCE_DBFS = -60.0        # no frame louder than this (after removing DC): no speech
# A head (over the pretrained encoder) pools an utterance's frames into one mean and std
# per layer; it was trained on whole RAVDESS utterances, 2.9-5.3 s. Audio up to this long
# is pooled whole, as the encode stage did; longer audio (where the pooled statistics
# drift: one clip repeated 7 times read as another emotion) is scored in windows of this
# length, as the log-mel models score theirs in clips.
HEAD_WINDOW_S = 5.5


class ModelError(ValueError):
    """A model folder that cannot be used; the message names the file and the problem."""


@dataclass
class CellModels:
    """The fold models of one `models/<model>-<subset>/` folder, in fold order."""

    folder: Path
    models: list[torch.nn.Module]
    checkpoints: list[dict[str, Any]]
    labels: list[str]
    feature_params: FeatureParams | None   # None for a head over the pretrained encoder,
    encode_attrs: dict[str, Any] | None = None   # whose encoder is described here instead

    @property
    def head(self) -> bool:
        return self.feature_params is None

    @property
    def grid(self) -> int:
        """A frame head's grid (encode.grid: its input is the frames on it); 0 otherwise."""
        from .params import GRID_HEADS
        frame_head = bool(self.checkpoints) and self.checkpoints[0]["model"] in GRID_HEADS
        return int(self.encode_attrs["grid"]) if frame_head else 0

    @property
    def folds(self) -> list[int]:
        return [int(c["fold"]["number"]) for c in self.checkpoints]


def load_cell_models(folder: str | Path, expected: FeatureParams | None = None) -> CellModels:
    """Load every `fold<k>.pt` of `folder`; they must agree on labels and feature params.

    With `expected`, a model trained on other feature params is refused.
    """
    from .checkpoint import load_model

    folder = Path(folder)
    paths = sorted(folder.glob("fold*.pt"), key=_fold_number)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such model folder (train one with `dvc repro`, "
                         "or pass --model models/<model>-<subset>)")
    if not paths:
        raise ModelError(f"{folder}: no fold<k>.pt checkpoints in the model folder")
    models, checkpoints = [], []
    for path in paths:
        model, checkpoint = load_model(path)
        model.eval()
        models.append(model)
        checkpoints.append(checkpoint)
    first = checkpoints[0]
    for path, checkpoint in zip(paths[1:], checkpoints[1:], strict=True):
        if list(checkpoint["labels"]) != list(first["labels"]):
            raise ModelError(f"{path}: labels {list(checkpoint['labels'])} differ from "
                             f"{paths[0].name}'s {list(first['labels'])}")
        problems = feature_differences(first["feature_params"], checkpoint["feature_params"])
        if problems:
            raise ModelError(f"{path}: feature params differ from {paths[0].name}'s: {problems}")
    if first["model"] in HEAD_MODELS:          # encoded.h5's attributes: weights and settings
        return CellModels(folder, models, checkpoints, list(first["labels"]), None,
                          dict(first["feature_params"]))
    params = feature_params_of(first, paths[0])
    if expected is not None:
        problems = feature_differences(dataclasses.asdict(expected), first["feature_params"])
        if problems:
            raise ModelError(f"{folder}: trained on other feature params than requested "
                             f"(requested vs model: {problems}); retrain it or drop --params")
    return CellModels(folder, models, checkpoints, list(first["labels"]), params)


def feature_params_of(checkpoint: dict[str, Any], path: Path) -> FeatureParams:
    from .params import ParamsError, convert

    try:
        return convert(dict(checkpoint["feature_params"]), FeatureParams, "feature_params",
                        str(path))
    except ParamsError as err:          # "<file>: feature_params.hop_length = ..., must be"
        raise ModelError(str(err).replace(f"{path}: ", f"{path}: checkpoint field ", 1)) from None


def windows(wave: torch.Tensor, params: FeatureParams, hop: int | None = None,
            notes: list[str] | None = None) -> torch.Tensor:
    """`(samples,)` -> `(W, S)` clips of the model's length S = n_samples(params).

    Audio that fits in one clip after the clip policy's own trim (or offset) gives exactly
    the clip training used (`features.fix_length`). Longer audio gives windows `hop`
    samples apart (default half a clip) over the trimmed audio, the last flush with its end.
    More than `MAX_WINDOWS` are spread evenly instead, first and last still flush with the
    ends (a line saying so is appended to `notes`).
    """
    length = features.n_samples(params)
    hop = hop or length // 2
    if params.clip == "trim":
        start, end = features.nonsilent_span(wave, params.trim_db, params.n_fft,
                                             params.hop_length)
        body = wave[start:end]
    else:
        body = wave[round(params.offset_s * params.sample_rate):]
    if body.shape[0] <= length:
        return features.fix_length(wave, params)[None]                 # (1, S)
    starts = list(range(0, body.shape[0] - length + 1, hop))
    if starts[-1] + length < body.shape[0]:
        starts.append(body.shape[0] - length)
    if len(starts) > MAX_WINDOWS:
        if notes is not None:
            spread = (body.shape[0] - length) / (MAX_WINDOWS - 1) / params.sample_rate
            notes.append(f"{len(starts)} windows at a hop of {hop / params.sample_rate:g} s "
                         f"would be over the bound of {MAX_WINDOWS}; scored {MAX_WINDOWS} "
                         f"spread over the audio ({spread:.3g} s apart)")
        starts = np.linspace(0, body.shape[0] - length, MAX_WINDOWS).round().astype(int).tolist()
    return torch.stack([body[s:s + length] for s in starts])            # (W, S)


def audio_warnings(peak: float, wave: torch.Tensor, params: FeatureParams) -> list[str]:
    """What makes a score of `wave` (mono, at the model's rate) meaningless or doubtful:
    shorter than one analysis frame, no frame above `SILENCE_DBFS` once any DC offset is
    taken away (silence, a constant), samples outside [-1, 1] (`peak`, before resampling)."""
    notes = []
    if wave.shape[0] < params.n_fft:
        notes.append(f"too short to judge: {wave.shape[0]} sample(s) at {params.sample_rate} Hz, "
                     f"less than one analysis frame (n_fft = {params.n_fft}); scored as padding")
    else:
        frames = (wave.double() - wave.double().mean()).unfold(0, params.n_fft, params.hop_length)
        loudest = 10 * math.log10(max(float(frames.square().mean(dim=1).max()), 1e-20))
        if loudest < SILENCE_DBFS:
            notes.append(f"no speech to judge: the loudest frame is at {loudest:.0f} dBFS, below "
                         f"the silence threshold of {SILENCE_DBFS:.0f} dBFS (silence or a "
                         "constant signal)")
    if peak > 1.0:
        notes.append(f"samples outside [-1, 1] (peak {peak:.3g}): float audio out of range "
                     "(clipped or wrongly scaled); the score may mean little")
    return notes


@dataclass(frozen=True)
class Prediction:
    file: str
    emotion: str
    probabilities: dict[str, float]
    windows: int
    warnings: list[str] = dataclasses.field(default_factory=list)


def head_front():
    """What audio_warnings needs of a head's front end: Whisper's rate and frames."""
    from .encoders.whisper import HOP, N_FFT, SAMPLE_RATE
    return argparse.Namespace(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP)


def head_encoder(attrs: dict[str, Any]):
    """The pretrained encoder a head was trained over, from its checkpoint's
    `feature_params` (encoded.h5's attributes): the same weights (by sha256), found
    offline (`weights.resolve`), with the same padding; WeightsError when they are gone."""
    from .encoded import open_encoder

    return open_encoder(attrs["model"], bool(attrs["pad_30s"]), download=False,
                        sha256=attrs["weights_sha256"])[0]


def encoder_inputs(wave: torch.Tensor, encoder, hop: int | None = None,
                   notes: list[str] | None = None, grid: int = 0) -> np.ndarray:
    """(samples,) at 16 kHz -> (W, 2D, L) a head's inputs (`grid`: a frame head's,
    (W, L*D, G), each window on that grid): the whole utterance when it is no
    longer than `HEAD_WINDOW_S`, as the encode stage pooled each training utterance; longer
    audio in windows of `HEAD_WINDOW_S`, `hop` apart (default half a window), the last flush
    with the end (at most MAX_WINDOWS, spread, with a note). `score_inputs` averages the
    windows' probabilities."""
    from .encoded import as_inputs, encode_wave, grid_inputs
    from .encoders.whisper import N_FFT, SAMPLE_RATE

    length = round(HEAD_WINDOW_S * SAMPLE_RATE)
    if wave.shape[0] < N_FFT:            # shorter than one frame: padded, with the warning
        wave = torch.nn.functional.pad(wave, (0, N_FFT - wave.shape[0]))
    if wave.shape[0] <= length:
        starts = [0]
    else:
        starts = list(range(0, wave.shape[0] - length + 1, hop or length // 2))
        if starts[-1] + length < wave.shape[0]:
            starts.append(wave.shape[0] - length)
        if len(starts) > MAX_WINDOWS:
            if notes is not None:
                notes.append(f"{len(starts)} windows of {HEAD_WINDOW_S:g} s: scored "
                             f"{MAX_WINDOWS} spread over the audio")
            starts = np.linspace(0, wave.shape[0] - length, MAX_WINDOWS).round().astype(int)
    encodings = [encode_wave(encoder, wave[s:s + length], keep_frames=False, grid=grid)
                 for s in starts]
    if grid:
        return grid_inputs(np.stack([e.grid for e in encodings])).astype(np.float32)
    return as_inputs(np.stack([e.pooled for e in encodings]))           # (W, L, 2, D)


@dataclass
class FileInputs:
    """One file ready for the models: its windows' features and what was noticed."""

    path: str | Path
    features: np.ndarray          # (W, F, T): log-mel windows, or a head's (W, 2D, L)
    notes: list[str]


def file_inputs(path: str | Path, cell: CellModels, extractor: features.Extractor,
                hop: int | None = None) -> FileInputs:
    """Read one file and make the models' inputs; raises AudioError naming it when it
    cannot be read."""
    params = cell.feature_params or head_front()
    data, rate = audio.read(path)                       # as features.load_wave, keeping the peak
    wave = features.to_model_rate(data, rate, params.sample_rate)      # (samples,)
    notes = audio_warnings(float(np.abs(data).max()), wave, params)
    if cell.head:                         # the encoder's pooled layers, as the encode stage
        feats = torch.from_numpy(encoder_inputs(wave, extractor, hop, notes,  # (W, 2D, L)
                                                cell.grid))
    else:
        clips = windows(wave, params, hop, notes)                       # (W, S)
        with torch.inference_mode():
            feats = torch.cat([extractor(clips[i:i + EXTRACT_BATCH])   # (W, F, T)
                               for i in range(0, clips.shape[0], EXTRACT_BATCH)])
    if not torch.isfinite(feats).all():
        raise AudioError(f"{path}: features are not finite (NaN or infinite)")
    return FileInputs(path, feats.numpy(), notes)


def score_inputs(cell: CellModels, inputs: Sequence[FileInputs], shifts: Sequence[int] = (0,),
                 speakers: Sequence[Any] | None = None) -> list[Prediction]:
    """Each file's prediction: its windows' probabilities averaged over windows and fold
    models. Models trained with `train.speaker_norm` standardise a speaker by its own
    statistics: `speakers` names each file's speaker (`--speaker`: one for all; `external`:
    the corpus's speakers); by default each file is its own speaker (its windows), shrunk
    toward the training statistics by the model's prior (utterance-only: nothing else is
    known of the speaker)."""
    from .inference import predict_proba

    x = np.concatenate([i.features for i in inputs])                    # (sum W, F, T)
    owner = np.repeat(np.arange(len(inputs)), [len(i.features) for i in inputs])
    if speakers is not None:
        if len(speakers) != len(inputs):
            raise ValueError(f"{len(speakers)} speakers for {len(inputs)} files")
        speakers = pd.factorize(pd.Series(list(speakers), dtype=object))[0][owner]
    else:
        speakers = owner
    probs = np.stack([np.asarray(predict_proba(model, checkpoint, x, shifts=shifts,
                                               speakers=speakers))
                      for model, checkpoint in zip(cell.models, cell.checkpoints, strict=True)])
    labels, out = cell.labels, []
    for k, item in enumerate(inputs):
        mean = probs[:, owner == k].reshape(-1, probs.shape[-1]).mean(axis=0)   # (C,)
        out.append(Prediction(str(item.path), labels[int(mean.argmax())],
                              {label: round(float(p), DECIMALS)
                               for label, p in zip(labels, mean, strict=True)},
                              int(len(item.features)), item.notes))
    return out


def predict_file(path: str | Path, cell: CellModels, extractor: features.Extractor,
                 hop: int | None = None, shifts: Sequence[int] = (0,)) -> Prediction:
    """Score one file on its own; raises AudioError naming it when it cannot be read."""
    return score_inputs(cell, [file_inputs(path, cell, extractor, hop)], shifts)[0]


def table(predictions: Sequence[Prediction], labels: Sequence[str]) -> str:
    """A fixed-width table for people: file, emotion, then one probability column per class."""
    width = max([len("file")] + [len(p.file) for p in predictions])
    emotion_width = max(len("emotion"), *(len(label) for label in labels))
    head = f"{'file':<{width}}  {'emotion':<{emotion_width}}" + "".join(
        f"  {label:>{max(len(label), 6)}}" for label in labels)
    lines = [head]
    for p in predictions:
        lines.append(f"{p.file:<{width}}  {p.emotion:<{emotion_width}}" + "".join(
            f"  {p.probabilities[label]:>{max(len(label), 6)}.3f}" for label in labels))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="speech-emotion predict",
        description="Predict the emotion of speech recordings with a trained model.")
    ap.add_argument("files", nargs="+", metavar="FILE",
                    help="audio files (WAV, FLAC, OGG; any sample rate, mono or stereo)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                    help="a trained model folder models/<model>-<subset> holding fold<k>.pt "
                         f"(default: {DEFAULT_MODEL}); its fold models are averaged")
    ap.add_argument("--json", action="store_true",
                    help="print JSON for programs instead of a table")
    ap.add_argument("--params", type=Path, default=None,
                    help="refuse the model unless its feature params equal the `features` "
                         "section of this params.yaml")
    ap.add_argument("--shifts", type=int, nargs="+", default=None, metavar="FRAMES",
                    help="test-time augmentation: average over copies shifted by these many "
                         "frames (default: evaluate.shifts of --params, else of ./params.yaml "
                         "if there is one, else 0: none)")
    ap.add_argument("--speaker", action="store_true",
                    help="the files are all one speaker's: a model trained with "
                         "train.speaker_norm standardises them by their joint statistics "
                         "(default: each file is its own speaker); the more recordings, of "
                         "the more emotions, the better the reference")
    ap.add_argument("--hop-s", type=float, default=None,
                    help="seconds between windows on audio longer than the model's clip "
                         "(default: half a clip)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        from .params import DEFAULT_PATH, load
        loaded = None                  # --params, else ./params.yaml for the default shifts
        if args.params is not None:
            loaded = load(args.params)
        elif args.shifts is None and DEFAULT_PATH.is_file():
            loaded = load(DEFAULT_PATH)
        shifts = args.shifts or (loaded.evaluate.shifts if loaded else [0])
        cell = load_cell_models(args.model, loaded.features if args.params else None)
        params = cell.feature_params
        if cell.head:                  # no time axis: shifts do not apply; the encoder
            extractor = head_encoder(cell.encode_attrs)
        else:
            from .inference import check_shifts
            check_shifts(shifts, features.n_frames(params),     # before any file is read
                         "--shifts" if args.shifts else "evaluate.shifts")
            extractor = features.Extractor(params)
    except (ModelError, ValueError, OSError, RuntimeError) as err:   # WeightsError: Runtime
        print(f"error: {err}", file=sys.stderr)
        return 2
    hop = None
    if args.hop_s is not None and cell.head:
        if not 0.01 <= args.hop_s <= HEAD_WINDOW_S:
            print(f"error: --hop-s {args.hop_s:g}: must be between 0.01 s and "
                  f"{HEAD_WINDOW_S:g} s (one window) for this model", file=sys.stderr)
            return 2
        hop = round(args.hop_s * 16000)
    elif args.hop_s is not None:
        # at least one feature frame (closer windows repeat each other), at most one clip
        # (wider ones would skip audio)
        low = params.hop_length / params.sample_rate
        high = features.n_samples(params) / params.sample_rate
        if not low <= args.hop_s <= high:
            print(f"error: --hop-s {args.hop_s:g}: must be between {low:g} s (one feature "
                  f"frame) and {high:g} s (one clip) for this model", file=sys.stderr)
            return 2
        hop = max(1, round(args.hop_s * params.sample_rate))
    results, errors = [], []
    files, missing = expand(args.files)
    for path, message in missing:
        print(f"error: {message}", file=sys.stderr)
        errors.append({"file": str(path), "error": message})
    ready = []
    for path in files:
        try:
            item = file_inputs(path, cell, extractor, hop)
            if not args.speaker:          # scored now: one file's memory at a time
                results.extend(score_inputs(cell, [item], shifts))
            else:
                ready.append(item)
        except AudioError as err:
            message = str(err) if str(path) in str(err) else f"{path}: {err}"
            print(f"error: {message}", file=sys.stderr)
            errors.append({"file": str(path), "error": message})
            continue
        for note in item.notes:
            print(f"warning: {path}: {note}", file=sys.stderr)
    if ready:
        results = score_inputs(cell, ready, shifts, speakers=[0] * len(ready))
    if args.json:
        print(json.dumps({
            "model": str(cell.folder), "folds": cell.folds, "labels": cell.labels,
            "predictions": [dataclasses.asdict(r) for r in results], "errors": errors,
        }, indent=2))
    elif results:
        print(table(results, cell.labels))
    return 1 if errors else 0


def expand(args: Sequence[str | Path]) -> tuple[list[str | Path], list[tuple[Path, str]]]:
    """The files to score: each argument, or the audio files (`AUDIO_SUFFIXES`, any depth,
    sorted) of a directory; and `(argument, message)` for each directory with none and
    each empty argument (an error, not the current folder)."""
    files, empty = [], []
    for arg in args:
        if isinstance(arg, str) and not arg.strip():   # Path("") is ".": every file here
            empty.append((Path(arg), f"{arg!r}: an empty path (an unset variable?); name a "
                                     "file or a directory"))
            continue
        folder = Path(arg)
        if not folder.is_dir():
            files.append(arg)
            continue
        found = sorted(p for p in folder.rglob("*")
                       if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not found:
            message = f"{folder}: a directory with no audio files ({', '.join(AUDIO_SUFFIXES)})"
            empty.append((folder, message))
        files.extend(found)
    return files, empty


def _fold_number(path: Path) -> tuple[int, str]:
    digits = path.stem.removeprefix("fold")
    return (int(digits) if digits.isdigit() else sys.maxsize, path.name)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: how a trained cell's UA holds up when the recording changes.

    python benchmarks/robustness.py models/cnn-all
    python benchmarks/robustness.py models/cnn-all --shifts -8 -6 -4 -2 0 2 4 6 8 --limit 40

Each fold model `fold<k>.pt` of the model folder is scored on its own fold's test actors
only (the checkpoint's `fold` record says which; never an actor it trained on), on the
utterances of its subset, as the evaluate stage scores them: the features stage's clip
policy and transform with the checkpoint's feature params, its normalisation,
`--shifts` (default 0: none). Each utterance is scored once per condition, the change
made to the waveform (mono, at the model's rate) before the clip policy:

    clean         as recorded
    level-20dB    20 dB quieter
    level+10dB    10 dB louder, clipped to [-1, 1] as a recorder would
    noise-snr20   white noise 20 dB below the speech (its power over the non-silent span)
    noise-snr10   white noise 10 dB below the speech
    telephone     band-passed to 300-3400 Hz (4th-order Butterworth, causal)
    8khz          resampled to 8 kHz and back (the pipeline's own resampler)

and with `--conditions voices` (or `all`), other voices, rooms and codecs:

    speed0.9      played 10 % slower: pitch, formants and tempo down together
    speed1.1      10 % faster
    reverb0.6s    a synthetic room: decaying noise, 60 dB down after 0.6 s, level kept
    mu-law        8-bit mu-law companding (the G.711 telephone codec)

`--actors validation` scores each fold's validation actors instead (cells trained with
`-S train.monitor=ua`, so that they held them out): a recipe is chosen there, never on the
test actors. `--normalise speaker` normalises each actor's features with that actor's own
per-bin statistics (unlabelled recordings of one speaker, as a deployed model could be
given) instead of the training actors'.

Prints UA (%) per condition, per fold and the mean over folds, and the mean's change from
clean; `--out` saves the per-fold figures as JSON, and `--table a.json b.json ...` prints
one row per saved run. The noise is drawn from `--seed`, the fold and the utterance: the
same run gives the same table. Trains nothing; reads data/interim/data.csv and
data/raw/ravdess (the pipeline's), or `--raw` a RAVDESS folder, zip or tar (taken and
labelled as the download and labels stages take `data.source: local`, or by `--data`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from speech_emotion import atomic, features, labels, metrics, paths, predict, waveforms
from speech_emotion.checkpoint import load_model
from speech_emotion.folds import subset_table
from speech_emotion.inference import predict_proba
from speech_emotion.normalisation import fit_normalisation
from speech_emotion.params import GRID_HEADS, HEAD_MODELS
from speech_emotion.predict import feature_params_of
from speech_emotion.sources.local import copy_corpus


def conditions(params, kinds: str = "recordings") -> dict[str, waveforms.Change]:
    """`waveforms.conditions` with the noise's speech span from the feature params."""
    return waveforms.conditions(params.trim_db, params.n_fft, params.hop_length, kinds)


def score_fold(checkpoint_path: Path, table, raw: Path, shifts: list[int], seed: int,
               limit: int | None, log=print, actors: str = "test",
               normalise: str = "training", kinds: str = "recordings",
               fuse: Path | None = None, head_weight: float = 0.5,
               members: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """UA of one fold model on its own test actors (or, `actors="validation"`, its fold's
    validation actors: where a recipe is chosen), per condition. `normalise="speaker"`:
    each actor's features are normalised with that actor's own per-bin statistics (of the
    changed recordings, as a deployed model could take them from a speaker's unlabelled
    recordings) instead of the training actors'. `fuse`: the same fold of a log-mel model,
    scored alike; the class probabilities are `head_weight` x this model's plus the rest x
    its (speech_emotion.fusion); `members`, when given, receives each member's own UA per
    condition (`head`, `model`), scored on the same changed utterances."""
    args = (table, raw, shifts, seed, limit, log, actors, normalise, kinds)
    rows, labels, proba = fold_probabilities(checkpoint_path, *args)

    def ua(probabilities: dict[str, np.ndarray]) -> dict[str, float]:
        return {name: metrics.figures(rows["emotion_name"],
                                      [labels[k] for k in p.argmax(axis=1)])["ua"]
                for name, p in probabilities.items()}

    if fuse is not None:
        other_rows, other_labels, other = fold_probabilities(fuse, *args)
        if list(other_rows["path"]) != list(rows["path"]) or other_labels != labels:
            raise SystemExit(f"{fuse}: not the same fold, subset and classes as "
                             f"{checkpoint_path}")
        if members is not None:
            members.update(head=ua(proba), model=ua(other))
        proba = {name: head_weight * p + (1 - head_weight) * other[name]
                 for name, p in proba.items()}
    return ua(proba)


def fold_probabilities(checkpoint_path: Path, table, raw: Path, shifts: list[int], seed: int,
                       limit: int | None, log=print, actors: str = "test",
                       normalise: str = "training", kinds: str = "recordings"):
    """`score_fold`'s rows, the model's classes and the class probabilities (n, C) of its
    rows under each condition."""
    model, checkpoint = load_model(checkpoint_path)
    model.eval()
    record = checkpoint["fold"]
    if actors == "validation" and checkpoint.get("monitor", "none") == "none":
        raise SystemExit(f"{checkpoint_path}: trained under train.monitor: none, so its "
                         f"validation actors trained too; retrain with -S train.monitor=ua")
    scored = sorted(int(a) for a in record[f"{actors}_actors"])
    head = checkpoint["model"] in HEAD_MODELS      # the pretrained encoder, then the head
    grid = int(checkpoint["feature_params"]["grid"]) if checkpoint["model"] in GRID_HEADS else 0
    # a head: Whisper's 16 kHz front end; noise levels from the span above -40 dB
    params = (argparse.Namespace(**vars(predict.head_front()), trim_db=40.0) if head
              else feature_params_of(checkpoint, checkpoint_path))
    rows = subset_table(table, checkpoint["subset"])
    rows = rows[rows["actor"].isin(scored)].reset_index(drop=True)
    if limit:
        rows = rows.iloc[:limit]
    if rows.empty:
        raise SystemExit(f"{checkpoint_path}: none of its {actors} actors {scored} is in the data")
    log(f"{checkpoint_path.name}: fold {record['number']}, {actors} actors {scored}, "
        f"{len(rows)} utterances", file=sys.stderr)
    waves = [features.load_wave(raw / path, params.sample_rate).numpy() for path in rows["path"]]
    if head:
        encoder = predict.head_encoder(checkpoint["feature_params"])
    else:
        extractor = features.Extractor(params)
    out = {}
    for name, change in conditions(params, kinds).items():
        changed = [torch.from_numpy(change(wave, params.sample_rate,
                                           np.random.default_rng([seed, int(record["number"]), i])))
                   for i, wave in enumerate(waves)]
        if head:           # the whole utterance through the encoder, as the encode stage;
            parts = [predict.encoder_inputs(wave, encoder, grid=grid)    # a long
                     for wave in changed]
            feats = torch.from_numpy(np.concatenate(parts))   # one in windows: (W, 2D, L)
            owner = np.repeat(np.arange(len(parts)), [len(part) for part in parts])  # (W,)
        else:
            clips = [features.fix_length(wave, params) for wave in changed]
            with torch.inference_mode():
                feats = torch.cat([extractor(torch.stack(clips[i:i + 64]))      # (N, F, T)
                                   for i in range(0, len(clips), 64)])
            owner = np.arange(len(clips))
        actor = rows["actor"].to_numpy()[owner]                                  # per row
        if normalise == "speaker":     # each actor's own statistics, no labels: an enrolment
            proba, x = np.zeros((len(owner), len(checkpoint["labels"]))), feats.numpy()
            for who in np.unique(actor):
                mine = actor == who
                stats = fit_normalisation(x[mine], checkpoint["normalisation"].get(
                    "utterance", "none"), per_frame=head and not grid, pooled=bool(grid))
                proba[mine] = predict_proba(model, {**checkpoint, "normalisation": stats},
                                            x[mine], shifts=shifts)
        else:
            # a model trained with train.speaker_norm: each actor standardised by its own
            # changed recordings, as evaluate does (speaker-adaptive); others ignore it
            proba = predict_proba(model, checkpoint, feats.numpy(), shifts=shifts,
                                  speakers=actor)                               # (W, C)
        # an utterance's windows averaged, as predict does
        out[name] = np.stack([proba[owner == i].mean(axis=0) for i in range(len(rows))])
    return rows, list(checkpoint["labels"]), out


def table(per_fold: dict[int, dict[str, float]]) -> str:
    folds = sorted(per_fold)
    names = list(per_fold[folds[0]])
    lines = ["| condition | " + " | ".join(f"fold {k}" for k in folds) + " | mean UA (%) | "
             "change (pp) |", "|---|" + "---:|" * (len(folds) + 2)]
    clean = statistics.fmean(per_fold[k]["clean"] for k in folds)
    for name in names:
        mean = statistics.fmean(per_fold[k][name] for k in folds)
        lines.append(f"| {name} | " + " | ".join(f"{100 * per_fold[k][name]:.1f}" for k in folds)
                     + f" | {100 * mean:.1f} | {100 * (mean - clean):+.1f} |")
    return "\n".join(lines)


def compare(saved: list[Path]) -> str:
    """One row per run saved with --out (its file name): mean UA over folds per condition,
    the mean over the changed conditions (everything but clean) and over all of them."""
    runs = {path.stem: json.loads(path.read_text()) for path in saved}
    names = list(dict.fromkeys(c for record in runs.values()      # every run's conditions
                               for c in next(iter(record["ua"].values()))))
    lines = ["| run | actors | folds | " + " | ".join(names) + " | mean changed | mean all |",
             "|---|---|---:|" + "---:|" * (len(names) + 2)]
    for run, record in runs.items():
        folds = record["ua"].values()
        mean = {c: statistics.fmean(fold[c] for fold in folds) for c in names
                if c in next(iter(folds))}
        changed = statistics.fmean(v for c, v in mean.items() if c != "clean")
        lines.append(f"| {run} | {record['actors']} | {len(folds)} | "
                     + " | ".join(f"{100 * mean[c]:.1f}" if c in mean else "-" for c in names)
                     + f" | {100 * changed:.1f} | {100 * statistics.fmean(mean.values()):.1f} |")
    return "\n".join(lines)


def protocol(model: Path, normalise: str) -> str:
    """speaker-adaptive when each scored actor is standardised by its own recordings
    (`--normalise speaker`, or a model trained with train.speaker_norm); else
    utterance-only."""
    _, saved = load_model(sorted(model.glob("fold*.pt"))[0])
    adaptive = normalise == "speaker" or saved["normalisation"].get("speaker") is not None
    return "speaker-adaptive" if adaptive else "utterance-only"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="?",
                    help="a model folder models/<model>-<subset>")
    ap.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                    help="compare runs saved with --out (one row each) instead of scoring")
    ap.add_argument("--data", type=Path, default=None,
                    help="data.csv (default: the pipeline's, or with --raw the labels of "
                         "--raw's files)")
    ap.add_argument("--raw", type=Path, default=None,
                    help="a folder in RAVDESS layout (default: the pipeline's data/raw/ravdess)")
    ap.add_argument("--shifts", type=int, nargs="+", default=[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="first N test utterances a fold")
    ap.add_argument("--actors", choices=["test", "validation"], default="test",
                    help="score each fold model on its fold's test actors (the result) or its "
                         "validation actors (where a recipe is chosen; needs train.monitor: ua)")
    ap.add_argument("--normalise", choices=["training", "speaker"], default="training",
                    help="feature statistics: the checkpoint's (training actors') or each "
                         "scored actor's own, from its recordings under the condition")
    ap.add_argument("--conditions", choices=["recordings", "voices", "all"],
                    default="recordings", help="recordings: level, noise, channel; voices: "
                    "speed (pitch, formants, tempo), a room, a codec; all: both")
    ap.add_argument("--fuse", type=Path, metavar="MODEL_DIR",
                    help="score the late fusion of the model (a head) with this log-mel "
                         "model's folder of the same folds and subset")
    ap.add_argument("--head-weight", type=float, default=0.5,
                    help="with --fuse: the head's share of the class probabilities")
    ap.add_argument("--out", type=Path, help="also write the per-fold UA here as JSON")
    args = ap.parse_args(argv)
    if args.table:
        print(compare(args.table))
        return 0
    if args.model is None:
        ap.error("give a model folder (or --table)")
    checkpoints = sorted(args.model.glob("fold*.pt"))
    if not checkpoints:
        raise SystemExit(f"{args.model}: no fold<k>.pt checkpoints")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="robustness-") as tmp:
        raw = args.raw or paths.RAW
        if args.data is None and args.raw is not None:   # as the download and labels stages
            raw = Path(tmp) / "ravdess"                   # take a local corpus: its speech
            copy_corpus(args.raw, raw, progress=False,    # audio only, a zip or tar too
                        log=lambda *a, **k: print(*a, file=sys.stderr))
            data = labels.build_table(raw, progress=True)
        else:
            data = labels.read_table(args.data or paths.DATA_CSV)
        per_fold, alone = {}, {}       # alone: with --fuse, each member's own UA per fold
        for path in checkpoints:
            number = int(path.stem.removeprefix("fold"))
            alone[number] = {}
            per_fold[number] = score_fold(path, data, raw, args.shifts, args.seed, args.limit,
                                          actors=args.actors, normalise=args.normalise,
                                          kinds=args.conditions,
                                          fuse=args.fuse and args.fuse / path.name,
                                          head_weight=args.head_weight,
                                          members=alone[number])
    print(f"{args.model}: UA per condition, each fold model on its own {args.actors} actors "
          f"only")
    print(table(per_fold))
    if args.out:
        atomic.write_text(args.out, json.dumps(
            {"model": str(args.model), "actors": args.actors, "shifts": args.shifts,
             **({"fuse": str(args.fuse), "head_weight": args.head_weight,
                 "members_ua": {str(k): {member: {c: round(v, 4) for c, v in ua.items()}
                                         for member, ua in by.items()}
                                for k, by in sorted(alone.items())}} if args.fuse else {}),
             "normalise": args.normalise, "conditions": args.conditions,
             "protocol": protocol(args.model, args.normalise),
             "ua": {str(k): {c: round(v, 4) for c, v in ua.items()}
                    for k, ua in sorted(per_fold.items())}}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

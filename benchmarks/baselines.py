"""The classic baselines of the accuracy benchmark, what a practitioner builds in an afternoon.

- `egemaps_svm`: openSMILE eGeMAPS v02 functionals (88 per utterance) + RBF SVM.
- `mfcc_mlp`: librosa MFCC (+ deltas) and log-mel mean/std statistics + an MLP.

Both are fitted per fold on the training actors, their one hyperparameter picked on the
fold's validation actors, then refitted on training + validation actors; the test actors
are only ever predicted. Benchmark-only dependencies: opensmile, librosa (`.[bench]`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm import tqdm

from speech_emotion import audio

BASELINES = ("egemaps_svm", "mfcc_mlp")


def egemaps(paths: list[Path]) -> np.ndarray:
    """(N, 88) eGeMAPS v02 functionals, each file at its own sample rate, downmixed."""
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    rows = []
    for path in tqdm(paths, desc="eGeMAPS", unit="file"):
        wave, sample_rate = audio.read(path)
        rows.append(smile.process_signal(audio.to_mono(wave), sample_rate).to_numpy()[0])
    return np.stack(rows).astype(np.float64)


def mfcc_stats(paths: list[Path], sample_rate: int = 16000) -> np.ndarray:
    """(N, 2 * (3 * 40 + 64)) mean and std of MFCC, deltas, delta-deltas and log-mel."""
    import librosa

    rows = []
    for path in tqdm(paths, desc="librosa stats", unit="file"):
        wave, rate = audio.read(path)
        y = librosa.resample(audio.to_mono(wave), orig_sr=rate, target_sr=sample_rate)
        y, _ = librosa.effects.trim(y, top_db=40)
        mel = librosa.power_to_db(librosa.feature.melspectrogram(
            y=y, sr=sample_rate, n_fft=512, win_length=400, hop_length=160, n_mels=64))
        mfcc = librosa.feature.mfcc(S=mel, n_mfcc=40)
        frames = np.concatenate([mfcc, librosa.feature.delta(mfcc),
                                 librosa.feature.delta(mfcc, order=2), mel])
        rows.append(np.concatenate([frames.mean(axis=1), frames.std(axis=1)]))
    return np.stack(rows).astype(np.float64)


def _classifier(name: str, value: float, seed: int):
    if name == "egemaps_svm":
        model = SVC(C=value, kernel="rbf", gamma="scale", class_weight="balanced")
    else:
        model = MLPClassifier(hidden_layer_sizes=(256,), alpha=value, max_iter=500,
                              early_stopping=False, random_state=seed)
    return make_pipeline(StandardScaler(), model)


GRIDS = {"egemaps_svm": (0.1, 1.0, 10.0, 100.0), "mfcc_mlp": (1e-3, 1e-2, 1e-1, 1.0)}


def fit_predict(name: str, x: np.ndarray, y: np.ndarray, train: np.ndarray,
                validation: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """Pick the hyperparameter on validation actors, refit on train + validation, predict test."""
    scores = []
    for value in GRIDS[name]:
        model = _classifier(name, value, seed).fit(x[train], y[train])
        scores.append(balanced_accuracy_score(y[validation], model.predict(x[validation])))
    best = GRIDS[name][int(np.argmax(scores))]
    fit_rows = np.concatenate([train, validation])
    model = _classifier(name, best, seed).fit(x[fit_rows], y[fit_rows])
    return model.predict(x[test])


def features_for(name: str, table: pd.DataFrame, raw_root: Path) -> np.ndarray:
    paths = [raw_root / p for p in table["path"]]
    return egemaps(paths) if name == "egemaps_svm" else mfcc_stats(paths)

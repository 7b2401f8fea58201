"""Checkpoints with random weights, made through the package's own API, for tests that
need a model folder `models/<model>-<subset>/fold<k>.pt` but not a trained model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from speech_emotion import checkpoint, features, models, params
from speech_emotion.folds import Fold, fold_record
from speech_emotion.params import CNNConfig, FeatureParams
from speech_emotion.ravdess import SUBSETS

REPO = Path(__file__).resolve().parents[1]
TINY_CNN = CNNConfig(channels=[4, 8], kernel_size=3, pool=2, dropout=0.0,
                     classifier_dropout=0.0, deltas=0)


def small_feature_params(**changes) -> FeatureParams:
    """The repository's feature params made small: 8 kHz, 1 s clips, 16 mel bins."""
    base = params.load(REPO / "params.yaml").features
    small = dict(sample_rate=8000, duration_s=1.0, n_fft=256, win_length=200, hop_length=80,
                 n_mels=16, f_min=20.0, f_max=4000.0, n_mfcc=13, batch_size=8)
    return dataclasses.replace(base, **{**small, **changes})


def save_random_cell(folder: Path, feature_params: FeatureParams, folds: list[Fold],
                     subset: str = "all", seed: int = 0, members: int = 1) -> Path:
    """One fold<k>.pt per fold in `folder`: a tiny CNN with random weights (`members` > 1:
    an ensemble checkpoint of that many, as `train.ensemble` writes)."""
    labels = list(SUBSETS[subset])
    n_bins = features.n_bins(feature_params)
    for fold in folds:
        torch.manual_seed(seed * 100 + fold.number)
        weights = [models.build("cnn", TINY_CNN, n_bins, len(labels)).state_dict()
                   for _ in range(members)]
        checkpoint.save(checkpoint.path_for(folder, fold.number), {
            "state_dict": weights[0] if members == 1 else weights,
            "model": "cnn",
            "config": dataclasses.asdict(TINY_CNN),
            "labels": labels,
            # dB log-mel features sit around -40 dB with a spread of about 20 dB
            "normalisation": {"mean": torch.full((n_bins,), -40.0),
                              "std": torch.full((n_bins,), 20.0)},
            "feature_params": dataclasses.asdict(feature_params),
            "fold": fold_record(fold),
            "subset": subset,
            "best_epoch": 1 if members == 1 else [1] * members,
        })
    return folder


def with_speaker_norm(folder: Path, out: Path, prior: float = 0.0) -> Path:
    """The checkpoints of `folder` as `train.speaker_norm` writes them, into `out`: each
    speaker standardised by its own statistics (shrunk by `prior` utterances toward the
    training rows' -40 +/- 20 dB), then training statistics of standardised rows."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.glob("fold*.pt")):
        saved = checkpoint.load(path)
        n_bins = saved["normalisation"]["mean"].shape[0]
        saved["normalisation"] = {
            "mean": torch.zeros(n_bins), "std": torch.ones(n_bins),
            "speaker": {"mean": torch.full((n_bins,), -40.0), "std": torch.full((n_bins,), 20.0),
                        "prior": float(prior), "per_frame": False}}
        checkpoint.save(out / path.name, saved)
    return out

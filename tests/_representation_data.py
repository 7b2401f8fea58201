"""Tiny data for the representation and probe tests: data.csv-like rows from the RAVDESS
schema and log-mel-like features with an emotion pattern and an actor pattern in them.
No audio: these tests exercise the learning and probing code, in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from speech_emotion import params
from speech_emotion.ravdess import actor_dir, full_corpus

ROOT = Path(__file__).resolve().parents[1]


def corpus_table(actors: tuple[int, ...]) -> pd.DataFrame:
    """data.csv columns the representation code reads, for every utterance of `actors`."""
    rows = [u for u in full_corpus() if u.actor in actors]
    table = pd.DataFrame({
        "path": [f"{actor_dir(u.actor)}/{u.stem}.wav" for u in rows],
        "stem": [u.stem for u in rows],
        "emotion": [u.emotion for u in rows],
        "intensity": [u.intensity for u in rows],
        "statement": [u.statement for u in rows],
        "repetition": [u.repetition for u in rows],
        "actor": [u.actor for u in rows],
        "emotion_name": [u.emotion_name for u in rows],
        "intensity_name": [u.intensity_name for u in rows],
        "gender": [u.gender for u in rows],
        "md5": [f"{i:032x}" for i in range(len(rows))],
    })
    return table.sort_values("path", ignore_index=True)


def toy_features(table: pd.DataFrame, bins: int = 16, frames: int = 32,
                 seed: int = 0) -> np.ndarray:
    """(N, bins, frames) float32: noise + a bump at an emotion's bins + an actor's tilt."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (len(table), bins, frames)).astype(np.float32)
    grid = np.arange(bins)
    for i, (emotion, actor) in enumerate(zip(table["emotion"], table["actor"], strict=True)):
        x[i] += 2.0 * np.exp(-0.5 * (grid - 2 * (emotion - 1)) ** 2)[:, None]
        x[i] += (0.3 * (actor % 5) * (grid / bins - 0.5))[:, None]
    return x


def tiny_params(**overrides):
    """The repository's params with a tiny represent section and one EmoBox fold."""
    small = {
        "split.folds": [1],
        "represent.segment_frames": 8,
        "represent.batch_size": 128,
        "represent.device": "cpu",
        "represent.beta_vae.epochs": 2,
        "represent.beta_vae.channels": [4, 8],
        "represent.beta_vae.latent_dim": 4,
        "represent.fhvae.epochs": 2,
        "represent.fhvae.hidden": 8,
        "represent.fhvae.z1_dim": 3,
        "represent.fhvae.z2_dim": 3,
        "represent.ss_fhvae.epochs": 2,
        "represent.ss_fhvae.hidden": 8,
        "represent.ss_fhvae.z1_dim": 3,
        "represent.ss_fhvae.z2_dim": 3,
    }
    small.update(overrides)
    return params.load(ROOT / "params.yaml", overrides=small)

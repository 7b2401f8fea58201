"""Feature normalisation: per-bin statistics of the training rows, applied to every row.

    raw features (N, F, T) dB log-mel (or MFCC)
    -> optional per-utterance centring (`train.utterance_norm`: none | level | bins)
    -> minus the per-bin mean, over the per-bin std (F,), both fitted on the training
       actors' rows only and stored in the checkpoint (`normalisation`)

A head's input (encoded.h5: T is the encoder's layers, not time) gets statistics per bin
and layer, (F, T), instead (`per_frame`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

STD_FLOOR = 1e-5  # a constant feature bin (e.g. all padding) is left unscaled, not divided by 0


def centre_utterances(features: torch.Tensor, how: str) -> torch.Tensor:
    """(B, F, T) -> (B, F, T) with each utterance's own mean taken away (no other utterance's
    statistics: what a deployed model knows). `none`: unchanged; `level`: the mean over
    bins and frames (the recording level); `bins`: each bin's mean over frames (the
    spectral envelope of speaker, microphone and room, as cepstral mean normalisation)."""
    if how == "none":
        return features
    if how == "level":
        return features - features.mean(dim=(1, 2), keepdim=True)
    if how == "bins":
        return features - features.mean(dim=2, keepdim=True)
    raise ValueError(f"train.utterance_norm: unknown {how!r} (none | level | bins)")


def fit_normalisation(features: np.ndarray | torch.Tensor,
                      utterance: str = "none", per_frame: bool = False) -> dict[str, Any]:
    """Per-bin mean and std (F,) over every frame of `features` (N, F, T), after
    `centre_utterances(features, utterance)`, which `normalise` then applies first;
    `per_frame`: per bin and frame (F, T), over the utterances only."""
    x = centre_utterances(torch.as_tensor(features, dtype=torch.float64), utterance)
    over = (0,) if per_frame else (0, 2)
    mean = x.mean(dim=over)
    std = x.std(dim=over).clamp(min=STD_FLOOR)
    stats: dict[str, Any] = {"mean": mean.float(), "std": std.float()}
    if utterance != "none":
        stats["utterance"] = utterance
    return stats


def normalise(features: torch.Tensor, normalisation: dict[str, Any]) -> torch.Tensor:
    """(B, F, T) -> (B, F, T): the utterance's own centring (if the statistics were fitted
    with one), then zero mean and unit variance per bin (training statistics)."""
    features = centre_utterances(features, normalisation.get("utterance", "none"))
    mean = normalisation["mean"].to(features.device)       # (F,) or, per frame, (F, T)
    std = normalisation["std"].to(features.device)
    if mean.ndim == 1:
        mean, std = mean[:, None], std[:, None]
    return (features - mean) / std

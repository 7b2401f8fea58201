"""Feature normalisation: the one chain every model input goes through, in training,
`evaluate`, `external` and `predict` alike.

    raw features (N, F, T) dB log-mel (or MFCC)
    -> optional per-utterance centring (`train.utterance_norm`: none | level | bins)
    -> optional per-speaker standardisation (`train.speaker_norm`): minus the speaker's
       own mean, over its own std, from that speaker's unlabelled utterances only, shrunk
       toward the training statistics by `prior` utterances (`speaker_statistics`)
    -> minus the per-bin mean, over the per-bin std (F,), both fitted on the training
       actors' rows only and stored in the checkpoint (`normalisation`)

A speaker's statistics are what a deployed model can know: its own audio, never a label.
With few recordings, or recordings mostly of one emotion, the speaker's mean is a poor
emotion-neutral reference; the shrinkage weighs the speaker's n utterances against
`prior` utterances' worth of the training statistics, w = n / (n + prior):

    mean_s = w * mean(speaker) + (1 - w) * mean(training)
    var_s  = w * var(speaker)  + (1 - w) * var(training)

A pooled head's input (encoded.h5: T is the encoder's layers, not time) gets statistics
per bin and layer, (F, T), instead (`per_frame`). A frame head's input (the encoder's
frames on a grid) gets per-bin statistics of the utterances' means (`pooled`): the scale
of what differs between utterances, not between the frames of one (phones, pauses), which
is many times larger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
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


def _moments(x: torch.Tensor, per_frame: bool, pooled: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) variance of (N, F, T): per bin (F,) over utterances and
    frames, or per bin and frame (F, T) over utterances; `pooled`: per bin (F,) of the
    utterances' means over their frames."""
    if pooled:
        x = x.mean(dim=2)
        return x.mean(dim=0), x.var(dim=0, correction=0)
    over = (0,) if per_frame else (0, 2)
    return x.mean(dim=over), x.var(dim=over, correction=0)


def fit_normalisation(features: np.ndarray | torch.Tensor,
                      utterance: str = "none", per_frame: bool = False,
                      speakers: Sequence[Any] | None = None,
                      speaker_prior: float = 0.0, pooled: bool = False) -> dict[str, Any]:
    """Per-bin mean and std (F,) over every frame of `features` (N, F, T), after
    `centre_utterances(features, utterance)`, which `normalise` then applies first;
    `per_frame`: per bin and frame (F, T), over the utterances only; `pooled`: per bin
    (F,) of the utterances' means (`_moments`).

    `speakers` (N,): standardise each speaker first (`speaker_statistics`, shrunk by
    `speaker_prior`), then fit the statistics on the standardised rows. The result then
    holds `speaker`: the training rows' own statistics (the shrinkage target and the
    fallback) and the prior, so that scoring applies the same chain."""
    x = centre_utterances(torch.as_tensor(features, dtype=torch.float64), utterance)
    stats: dict[str, Any] = {}
    if speakers is not None:
        mean, var = _moments(x, per_frame, pooled)
        stats["speaker"] = {"mean": mean.float(), "std": var.sqrt().clamp(min=STD_FLOOR).float(),
                            "prior": float(speaker_prior), "per_frame": per_frame,
                            **({"pooled": True} if pooled else {})}
        x = _standardise(x, speaker_statistics(x, speakers, stats["speaker"], centred=True))
    over = (0,) if per_frame else (0, 2)
    values = x.mean(dim=2) if pooled else x
    stats["mean"] = values.mean(dim=0 if pooled else over).float()
    stats["std"] = values.std(dim=0 if pooled else over).clamp(min=STD_FLOOR).float()
    if utterance != "none":
        stats["utterance"] = utterance
    return stats


def speaker_statistics(features: np.ndarray | torch.Tensor, speakers: Sequence[Any],
                       speaker: dict[str, Any], *, utterance: str = "none",
                       centred: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's speaker statistics: mean and std (N, F, 1), or (N, F, T) per frame, of the
    rows of `features` (N, F, T) that share its entry in `speakers` (N,), shrunk toward the
    training statistics `speaker` (a checkpoint's `normalisation["speaker"]`) by its prior.
    Unlabelled: only the features and who spoke them. `centred`: `features` already had
    `utterance` centring taken away."""
    x = torch.as_tensor(features, dtype=torch.float64)
    if not centred:
        x = centre_utterances(x, utterance)
    if len(speakers) != len(x):
        raise ValueError(f"{len(speakers)} speaker names for {len(x)} utterances")
    per_frame, prior = bool(speaker["per_frame"]), float(speaker["prior"])
    pooled = bool(speaker.get("pooled", False))
    ref_mean = speaker["mean"].to(torch.float64)
    ref_var = speaker["std"].to(torch.float64) ** 2
    shape = (len(x), *x.shape[1:]) if per_frame else (len(x), x.shape[1], 1)
    mean, std = torch.empty(shape, dtype=torch.float64), torch.empty(shape, dtype=torch.float64)
    codes = pd.factorize(pd.Series(list(speakers), dtype=object))[0]
    for code in np.unique(codes):
        rows = torch.from_numpy(np.flatnonzero(codes == code))
        own_mean, own_var = _moments(x[rows], per_frame, pooled)
        w = len(rows) / (len(rows) + prior)
        m = w * own_mean + (1 - w) * ref_mean
        v = w * own_var + (1 - w) * ref_var
        s = v.sqrt().clamp(min=STD_FLOOR)
        mean[rows] = m if per_frame else m[:, None]
        std[rows] = s if per_frame else s[:, None]
    return mean, std


def _standardise(x: torch.Tensor, statistics: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    mean, std = statistics
    return (x - mean.to(x.device, x.dtype)) / std.to(x.device, x.dtype)


def normalise(features: torch.Tensor, normalisation: dict[str, Any],
              speaker: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """(B, F, T) -> (B, F, T): the utterance's own centring (if the statistics were fitted
    with one), then the rows' speaker statistics (`speaker_statistics`; required when the
    statistics were fitted with speakers), then zero mean and unit variance per bin
    (training statistics)."""
    features = centre_utterances(features, normalisation.get("utterance", "none"))
    if "speaker" in normalisation:
        if speaker is None:
            raise ValueError("these statistics standardise each speaker first: give each "
                             "row's speaker statistics (normalisation.speaker_statistics)")
        features = _standardise(features, speaker)
    mean = normalisation["mean"].to(features.device)       # (F,) or, per frame, (F, T)
    std = normalisation["std"].to(features.device)
    if mean.ndim == 1:
        mean, std = mean[:, None], std[:, None]
    return (features - mean) / std

"""Scoring features with a trained model: logits in eval mode, and class probabilities
averaged over time-shifted copies (test-time augmentation).

    raw features (N, F, T)
    -> each copy shifted by s frames, s in `shifts` (edge frames held)   (N, F, T)
    -> the checkpoint's normalisation (the speaker's, then the training statistics) (N, F, T)
    -> model logits -> softmax                                           (N, C)
    -> mean over the copies                                              (N, C)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .normalisation import normalise, speaker_statistics


@torch.no_grad()
def logits_of(model: nn.Module, features: torch.Tensor, batch_size: int,
              device: torch.device) -> torch.Tensor:
    """Logits (N, n_classes) of normalised features (N, F, T), in eval mode, on CPU."""
    was_training = model.training
    model.eval()
    out = [model(features[i:i + batch_size].to(device)).float().cpu()
           for i in range(0, len(features), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def shift_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, F, T) -> (N, F, T) moved `frames` later in time (earlier if negative); the frames
    that come in repeat the first or last frame (the clip's edge, padding as a rule)."""
    t = x.shape[-1]
    source = (torch.arange(t, device=x.device) - frames).clamp(0, t - 1)     # (T,)
    return x[..., source]


def check_shifts(shifts: Sequence[int], n_frames: int, source: str = "evaluate.shifts") -> None:
    """The rule for test-time shifts: at least one, each shorter than the clip of
    `n_frames` frames; ValueError naming `source` (where they came from: `evaluate.shifts`,
    `predict --shifts`) otherwise."""
    if not shifts:
        raise ValueError(f"{source}: give at least one shift ([0]: no test-time augmentation)")
    if any(abs(s) >= n_frames for s in shifts):
        raise ValueError(f"{source} {list(shifts)}: every shift must be shorter than "
                         f"the clip's {n_frames} frames")


def predict_proba(model: nn.Module, checkpoint: dict[str, Any],
                  features: np.ndarray | torch.Tensor, batch_size: int = 64,
                  device: str | torch.device | None = None,
                  shifts: Sequence[int] = (0,), speakers: Sequence[Any] | None = None,
                  speaker: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
    """Class probabilities (N, n_classes) of raw features (N, F, T) from the features stage.

    Applies the checkpoint's normalisation (fitted on its training actors); the class
    order is `checkpoint["labels"]`. `model` comes from `checkpoint.load_model`.
    `shifts` (`evaluate.shifts`): each utterance is scored as copies shifted in time by
    these many frames, and their probabilities are averaged (test-time augmentation: the
    conv stack's pooling grid sees each copy at another phase); not for a head, whose
    input has no time axis.

    A checkpoint trained with `train.speaker_norm` standardises each speaker by its own
    statistics first: `speakers` (N,) says who spoke each row, and the statistics come
    from the rows of `features` that share it (unlabelled; `speaker_statistics`);
    `speaker` gives them instead (e.g. from other recordings of the same speakers). With
    neither, each row is its own speaker (utterance-only: nothing known of the speaker),
    shrunk toward the training statistics.
    """
    from .models import time_axis

    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    n_bins = checkpoint["normalisation"]["mean"].shape[0]
    if x.ndim != 3 or x.shape[1] != n_bins:
        raise ValueError(f"features of shape {tuple(x.shape)}: the model expects (N, {n_bins}, T)")
    if not time_axis(model):       # a head: T is the encoder's layers, nothing to shift
        shifts = (0,)
    check_shifts(shifts, x.shape[-1])
    device = torch.device(device) if device is not None else next(model.parameters()).device
    norm = checkpoint["normalisation"]
    if "speaker" in norm and speaker is None:
        speaker = speaker_statistics(x, range(len(x)) if speakers is None else speakers,
                                     norm["speaker"], utterance=norm.get("utterance", "none"))
    probabilities = [torch.softmax(logits_of(model, normalise(shift_frames(x, s) if s else x,
                                                              norm, speaker),
                                             batch_size, device), dim=1)
                     for s in shifts]
    return torch.stack(probabilities).mean(dim=0).numpy()                      # (N, C)

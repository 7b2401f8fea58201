"""Training-time augmentation of a batch of raw dB features (B, F, T).

    raw dB (B, F, T)
    -> time / mel-axis warp (`stretch`)                   optional, per utterance
    -> noise at a random SNR (`add_noise`)                 optional, mel power domain
    -> time shift (`time_shift`)                           optional, per utterance
    -> normalise (training statistics)
    -> SpecAugment frequency and time masks (fill 0)       optional

Every draw comes from torch's global RNG, which the training loop seeds.
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio
from torch import nn

from .normalisation import normalise
from .params import AugmentParams


def add_noise(db: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Mix noise into dB log-mel features (B, F, T) at a per-utterance SNR (B,).

    An approximation in the mel power domain (the features hold no phase to mix waves):
    the noise is flat across mel bins, with chi-square fluctuations per cell (the mean of
    two exponentials), scaled so that its mean power is the utterance's mean power over
    10^(SNR/10). Draws from torch's global RNG.
    """
    power = torch.pow(10.0, db / 10.0)                                   # (B, F, T)
    level = power.mean(dim=(1, 2)) / torch.pow(10.0, snr_db / 10.0)      # (B,)
    u = torch.rand((2,) + db.shape, device=db.device).clamp(min=1e-12)
    fluctuation = -torch.log(u).mean(dim=0)                              # (B, F, T), mean 1
    return 10.0 * torch.log10(power + level[:, None, None] * fluctuation)


def time_shift(x: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Roll each utterance (B, F, T) along time by its own offset in [-max_frames, max_frames]."""
    b, f, t = x.shape
    shift = torch.randint(-max_frames, max_frames + 1, (b,), device=x.device)     # (B,)
    source = (torch.arange(t, device=x.device)[None, :] - shift[:, None]) % t      # (B, T)
    return x.gather(2, source[:, None, :].expand(b, f, t))


def stretch(x: torch.Tensor, factor: torch.Tensor, dim: int, centre: bool) -> torch.Tensor:
    """Stretch each utterance of x (B, F, T) along `dim` (1: mel bins, 2: frames) by its own
    factor (B,), with linear interpolation: output index i reads input position i / factor,
    measured from index 0 (centre=False) or from the middle (centre=True); positions past
    either end read the edge value. On the mel axis factor > 1 moves the content up (the
    formants of a shorter vocal tract), factor < 1 down; on time factor > 1 is slower speech."""
    n = x.shape[dim]
    origin = (n - 1) / 2 if centre else 0.0
    grid = torch.arange(n, dtype=x.dtype, device=x.device)
    position = ((grid[None, :] - origin) / factor[:, None] + origin).clamp(0, n - 1)  # (B, n)
    low = position.floor().long().clamp(max=n - 2) if n > 1 else position.long()
    weight = (position - low).to(x.dtype)                                           # (B, n)
    high = (low + 1).clamp(max=n - 1)
    shape = (-1, n, 1) if dim == 1 else (-1, 1, n)
    expand = list(x.shape)
    low_index = low.reshape(shape).expand(expand)
    high_index = high.reshape(shape).expand(expand)
    w = weight.reshape(shape)
    return x.gather(dim, low_index) * (1 - w) + x.gather(dim, high_index) * w


class Augment(nn.Module):
    """The training-time augmentation of one batch, each part switchable in params.

    forward(raw dB features (B, F, T)) -> normalised, augmented features (B, F, T).
    Noise and time shift act on the raw dB values; the SpecAugment masks act after
    normalisation and fill with 0, the training mean.
    """

    def __init__(self, params: AugmentParams, normalisation: dict[str, torch.Tensor]):
        super().__init__()
        self.params = params
        self.normalisation = normalisation
        spec = params.spec_augment
        self.freq_mask = torchaudio.transforms.FrequencyMasking(spec.freq_mask, iid_masks=True)
        self.time_mask = torchaudio.transforms.TimeMasking(spec.time_mask, iid_masks=True)

    def forward(self, x: torch.Tensor,
                speaker: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        noise, shift, spec = self.params.noise, self.params.time_shift, self.params.spec_augment
        warp = self.params.warp
        if warp.enabled:
            b = x.shape[0]
            if warp.freq > 0:
                x = stretch(x, torch.empty(b, device=x.device).uniform_(1 - warp.freq,
                                                                        1 + warp.freq), 1, False)
            if warp.time > 0:
                x = stretch(x, torch.empty(b, device=x.device).uniform_(1 - warp.time,
                                                                        1 + warp.time), 2, True)
        if noise.enabled and noise.p > 0:
            snr = torch.empty(x.shape[0], device=x.device).uniform_(noise.snr_db_min,
                                                                    noise.snr_db_max)
            noisy = add_noise(x, snr)
            chosen = torch.rand(x.shape[0], device=x.device) < noise.p
            x = torch.where(chosen[:, None, None], noisy, x)
        if shift.enabled and shift.max_frames > 0:
            x = time_shift(x, shift.max_frames)
        x = normalise(x, self.normalisation, speaker)   # speaker: the rows' own statistics
        if spec.enabled:
            x = x[:, None]                                   # (B, 1, F, T): a mask per utterance
            for _ in range(spec.masks):
                x = self.time_mask(self.freq_mask(x, 0.0), 0.0)
            x = x[:, 0]
        return x


def check_augment(params: AugmentParams, feature_params: dict[str, Any]) -> None:
    """Noise mixing needs dB log-mel (power) features; say so instead of computing nonsense."""
    if params.noise.enabled and feature_params.get("kind") != "logmel":
        raise ValueError(f"train.augment.noise needs features.kind = logmel (the features are "
                         f"{feature_params.get('kind')!r}); set train.augment.noise.enabled=false")
    if params.noise.snr_db_min > params.noise.snr_db_max:
        raise ValueError("train.augment.noise: snr_db_min is above snr_db_max")

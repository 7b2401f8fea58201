"""Changes made to a waveform: the recordings and voices a model was not trained on.

Two users, one set of changes:
- `benchmarks/robustness.py` and `benchmarks/transfer.py` score a model on test (or
  validation) utterances changed in a fixed way (`conditions`);
- the `encode` stage makes training copies of each utterance (`encode.copies`), each copy
  one *session*: an actor recorded again in another room, with another voice, in noise or
  through a codec (`training_copy`). A session's room, voice or codec is drawn once for
  the actor and copy, so each session is a consistent speaker-and-channel, as a deployed
  model's speaker is; the noise is drawn per utterance.

Every change takes a mono float64 waveform (S,) at `rate` Hz and a numpy Generator, and
returns (S',) float64. Draws come only from the Generator: the same seed, the same wave.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
import torchaudio
from scipy import signal

from . import features

Change = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]  # (S,) -> (S',)

# the speech span for an SNR: frames within 40 dB of the loudest (25 ms frames, 10 ms hop
# at 16 kHz); a head has no feature params of its own to take them from
SPEECH_SPAN = {"trim_db": 40.0, "n_fft": 400, "hop": 160}


def level(db: float, clip: bool = False) -> Change:
    def change(wave, rate, rng):
        louder = wave * 10 ** (db / 20)
        return np.clip(louder, -1.0, 1.0) if clip else louder
    return change


def speech_power(wave: np.ndarray, trim_db: float, n_fft: int, hop: int) -> float:
    """Mean power over the span between the first and the last loud frame."""
    start, end = features.nonsilent_span(torch.from_numpy(wave), trim_db, n_fft, hop)
    return float(np.mean(wave[start:end] ** 2)) if end > start else float(np.mean(wave ** 2))


def noise(snr_db: float, trim_db: float, n_fft: int, hop: int, colour: float = 0.0) -> Change:
    """Additive noise `snr_db` below the speech's power; `colour` 0: white, 1: pink
    (power falling as 1/f), shaped in the frequency domain."""
    def change(wave, rate, rng):
        draw = rng.standard_normal(wave.shape[0])
        if colour:
            spectrum = np.fft.rfft(draw)
            f = np.maximum(np.fft.rfftfreq(wave.shape[0], 1 / rate), 20.0)
            draw = np.fft.irfft(spectrum / f ** (colour / 2), n=wave.shape[0])
            draw /= max(draw.std(), 1e-12)
        power = speech_power(wave, trim_db, n_fft, hop)
        return wave + draw * np.sqrt(power / 10 ** (snr_db / 10))
    return change


def telephone(wave, rate, rng):
    """Band-passed to 300-3400 Hz (4th-order Butterworth, causal)."""
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
    return signal.sosfilt(sos, wave)


def narrowband(wave, rate, rng):
    """Resampled to 8 kHz and back (the pipeline's own resampler)."""
    back = features.resample(features.resample(wave, rate, 8000), 8000, rate)
    return np.pad(back, (0, max(0, wave.shape[0] - back.shape[0])))[:wave.shape[0]]


def speed(up: int, down: int) -> Change:
    """Played `up/down` times as fast: tempo and pitch (and formants) move together, as a
    faster tape; small integers keep the resampling kernel short."""
    def change(wave, rate, rng):
        return torchaudio.functional.resample(torch.from_numpy(wave).float(), up,
                                              down).double().numpy()
    return change


def room_response(rt60: float, tail: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: the direct sound (1.0), then noise decaying
    exponentially, 60 dB down after `rt60` s, starting at `tail` of the direct sound."""
    t = np.arange(int(rt60 * rate)) / rate
    response = rng.standard_normal(t.shape[0]) * 10 ** (-3 * t / rt60) * tail
    response[0] = 1.0
    return response


def convolve(wave: np.ndarray, response: np.ndarray) -> np.ndarray:
    """The wave through `response`, cut to its length, the dry speech's level kept."""
    wet = signal.fftconvolve(wave, response)[:wave.shape[0]]
    return wet * np.sqrt(np.mean(wave ** 2) / max(np.mean(wet ** 2), 1e-20))


def reverb(rt60: float, tail: float = 0.1) -> Change:
    """A synthetic room (`room_response`) drawn from the utterance's rng."""
    def change(wave, rate, rng):
        return convolve(wave, room_response(rt60, tail, rate, rng))
    return change


def mu_law(wave, rate, rng):
    """8-bit mu-law, the G.711 telephone codec's companding, at the recording's rate."""
    x = torch.from_numpy(np.clip(wave, -1.0, 1.0))
    return torchaudio.functional.mu_law_decoding(
        torchaudio.functional.mu_law_encoding(x, 256), 256).numpy()


def conditions(trim_db: float, n_fft: int, hop: int,
               kinds: str = "recordings") -> dict[str, Change]:
    """The fixed conditions a model is scored under (`benchmarks/robustness.py`).

    `recordings`: the level, noise and channel changes; `voices`: other voices (10 %
    slower or faster: pitch, formants and tempo together), a room and a codec; `all`:
    both. (A phase-vocoder pitch shift that keeps the tempo was left out: torchaudio's
    lost up to 70 % of the level when stretching, an artefact of its own.)"""
    span = (trim_db, n_fft, hop)
    recordings = {"level-20dB": level(-20), "level+10dB": level(10, clip=True),
                  "noise-snr20": noise(20, *span), "noise-snr10": noise(10, *span),
                  "telephone": telephone, "8khz": narrowband}
    voices = {"speed0.9": speed(9, 10), "speed1.1": speed(11, 10),
              "reverb0.6s": reverb(0.6), "mu-law": mu_law}
    chosen = {"recordings": recordings, "voices": voices, "all": {**recordings, **voices}}
    return {"clean": lambda wave, rate, rng: wave, **chosen[kinds]}


# ---------------------------------------------------------------- training copies
COPY_KINDS = ("room", "voice", "noise", "codec")
# a voice session's speed, up/25: 0.88 to 1.12 without 1 (and without the scored 0.9, 1.1)
VOICE_SPEEDS = (22, 23, 24, 26, 27, 28)
ROOM_RT60_S = (0.2, 1.0)        # a room session's reverberation time, uniform
ROOM_TAIL = (0.05, 0.2)         # its reverberant tail against the direct sound, uniform
NOISE_SNR_DB = (5.0, 25.0)      # per utterance, uniform; white or pink per session
CODECS = (telephone, narrowband, mu_law)


def session_rng(seed: int, copy: int, speaker: str) -> np.random.Generator:
    """The draws of one actor's copy `copy` (its room, voice or codec)."""
    return np.random.default_rng([seed, copy, zlib.crc32(str(speaker).encode())])


def utterance_rng(seed: int, copy: int, speaker: str, utterance: str,
                  stream: int = 0) -> np.random.Generator:
    """The draws of one utterance within a session (`stream` 0: the ones the change makes
    from the rng it is given, e.g. its noise; 1: its settings, e.g. its SNR)."""
    return np.random.default_rng([seed, copy, zlib.crc32(str(speaker).encode()),
                                  zlib.crc32(str(utterance).encode()), stream])


def training_copy(kind: str, seed: int, copy: int, speaker: str, utterance: str) -> Change:
    """The change that makes training copy `copy` of `utterance`, spoken by `speaker`:
    one session of kind `kind` (`COPY_KINDS`), drawn from `seed`, `copy` and `speaker`."""
    session = session_rng(seed, copy, speaker)
    if kind == "room":
        rt60, tail = session.uniform(*ROOM_RT60_S), session.uniform(*ROOM_TAIL)
        response_seed = int(session.integers(2 ** 32))
        return lambda wave, rate, rng: convolve(
            wave, room_response(rt60, tail, rate, np.random.default_rng(response_seed)))
    if kind == "voice":
        return speed(int(session.choice(VOICE_SPEEDS)), 25)
    if kind == "noise":
        colour = float(session.integers(2))        # white or pink for the session
        snr = utterance_rng(seed, copy, speaker, utterance, 1).uniform(*NOISE_SNR_DB)
        return noise(snr, SPEECH_SPAN["trim_db"], SPEECH_SPAN["n_fft"], SPEECH_SPAN["hop"],
                     colour)
    if kind == "codec":
        return CODECS[int(session.integers(len(CODECS)))]
    raise ValueError(f"unknown copy kind {kind!r} (one of {', '.join(COPY_KINDS)})")


def copy_kind(kinds: list[str], copy: int) -> str:
    """Copy `copy` (0-based) of every utterance is of kind kinds[copy % len(kinds)]."""
    return kinds[copy % len(kinds)]


def training_copies(kinds: list[str], count: int, seed: int, speaker: str,
                    utterance: str) -> list[tuple[Change, np.random.Generator]]:
    """Every training copy of one utterance: its change and the rng to call it with."""
    return [(training_copy(copy_kind(kinds, k), seed, k, speaker, utterance),
             utterance_rng(seed, k, speaker, utterance)) for k in range(count)]

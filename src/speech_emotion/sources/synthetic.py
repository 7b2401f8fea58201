"""A deterministic, RAVDESS-shaped synthetic corpus: a small source-filter speech synthesiser.

Not noise with labels: each file is a sentence-like sequence of voiced and unvoiced
segments (the two RAVDESS statements as rough phone strings), made by a glottal pulse
source with jitter, shimmer and aspiration, passed through a cascade of time-varying
formant resonators, with frication noise for the unvoiced sounds. The emotions are
carried by the cues that carry them in real speech: pitch level and range, speaking
rate, loudness, jitter and shimmer, spectral tilt (glottal open quotient + a low-pass),
breathiness, plus a tremor for fear and a final rise for surprise.

Variation wide enough that classes overlap:
- every actor has a voice (gender from the actor number as in RAVDESS, pitch range,
  vocal-tract length, breathiness, loudness, noise floor) and an idiosyncratic way of
  expressing each emotion (an expressiveness factor and a per-emotion offset of every cue);
- every repetition draws fresh cue noise, phone durations and silences.

Format as the real data: 48 kHz 16-bit PCM WAV, 2.9-5.3 s with leading and trailing
silence, a few stereo files (identical channels, as in RAVDESS), and one pair of
identical files in Actor_07 (the real corpus has one there too).

Every file depends only on (seed, actor, its codes): the same seed gives byte-identical
files, whatever the number of actors or workers, and a corpus of fewer actors is a
subset of the full one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm import tqdm

from ..pool import fork_pool
from ..ravdess import ACTORS, EMOTIONS, Utterance, actor_dir, full_corpus, gender

SAMPLE_RATE = 48_000
FRAME = 240                      # control-rate frame: 5 ms at 48 kHz
FILTER_UPDATE = 2                # the formant filters are updated every 2 frames (10 ms)
MIN_DURATION_S, MAX_DURATION_S = 2.9, 5.3
STRONG_SCALE = 1.7               # strong intensity exaggerates every cue deviation by this
# One stereo file per actor for these actors (RAVDESS has a few stereo files too).
STEREO_ACTORS = (1, 5, 11, 16, 21)
# (actor, stem of the original, stem of its identical twin), as in the real corpus.
TWINS = ((7, "03-01-03-01-02-01-07", "03-01-03-01-02-02-07"),)

# ------------------------------------------------------------------ phones
# kind: V vowel, N nasal, Z voiced fricative, S voiceless fricative,
#       B voiced stop, P voiceless stop, D diphthong (formants glide to the second set).
# formants F1-F3 (Hz) of an adult male; duration (ms) at a neutral rate; stress.
_VOWELS = {
    "I": (400, 1920, 2560), "A": (730, 1090, 2440), "O": (570, 840, 2410),
    "@": (500, 1500, 2500), "r": (490, 1350, 1690), "aI": (730, 1090, 2440),
    "N": (300, 1200, 2500), "D": (400, 1500, 2500), "z": (300, 1600, 2600),
    "stop": (250, 1500, 2500),
}
_I_END = (400, 1920, 2560)
# frication noise: band centre (Hz), bandwidth (Hz), level relative to the voiced part
_FRICATION = {
    "s": (6500, 3000, 0.35), "z": (6000, 3000, 0.18), "D": (4500, 3000, 0.08),
    "k": (2500, 1500, 0.30), "t": (5000, 3000, 0.30), "d": (4000, 3000, 0.15),
    "g": (2200, 1500, 0.15), "b": (1200, 1500, 0.10),
}


@dataclass(frozen=True)
class Phone:
    symbol: str
    kind: str
    duration_ms: float
    stressed: bool = False


def _p(symbol: str, duration: float, stressed: bool = False) -> Phone:
    kinds = {"I": "V", "A": "V", "O": "V", "@": "V", "r": "V", "aI": "D", "N": "N",
             "s": "S", "z": "Z", "D": "Z", "k": "P", "t": "P", "d": "B", "g": "B", "b": "B",
             " ": "_"}
    return Phone(symbol, kinds[symbol], duration, stressed)


_TAIL = [_p("b", 70), _p("aI", 170), _p("D", 50), _p("@", 60), _p("d", 70), _p("O", 200, True),
         _p("r", 140)]
# "Kids are talking by the door" / "Dogs are sitting by the door"
STATEMENT_PHONES = {
    1: [_p("k", 90), _p("I", 110, True), _p("d", 60), _p("z", 90), _p(" ", 40),
        _p("A", 90), _p("r", 70), _p("t", 90), _p("O", 150, True), _p("k", 80),
        _p("I", 70), _p("N", 80), _p(" ", 30)] + _TAIL,
    2: [_p("d", 70), _p("O", 150, True), _p("g", 60), _p("z", 90), _p(" ", 40),
        _p("A", 90), _p("r", 70), _p("s", 120), _p("I", 110, True), _p("t", 60),
        _p("I", 70), _p("N", 80), _p(" ", 30)] + _TAIL,
}

# ------------------------------------------------------------------ emotion cues
# Deviations from neutral at normal intensity, one row per emotion:
# pitch (semitones), log pitch range, log rate, gain (dB), log jitter, log shimmer,
# tilt (low-pass coefficient), breathiness, open quotient.
CUES = ("pitch_st", "range", "rate", "gain_db", "jitter", "shimmer", "tilt", "breath", "oq")
_L = np.log
EMOTION_CUES = {
    "neutral":   (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "calm":      (-1.0, _L(0.8), _L(0.9), -1.0, 0.0, 0.0, 0.10, 0.08, 0.05),
    "happy":     (3.0, _L(1.5), _L(1.08), 5.0, 0.0, 0.0, -0.10, 0.0, -0.03),
    "sad":       (-0.5, _L(0.6), _L(0.8), 0.0, _L(1.5), _L(1.4), 0.20, 0.12, 0.08),
    "angry":     (2.5, _L(1.3), _L(1.1), 9.0, _L(1.2), 0.0, -0.25, -0.03, -0.12),
    "fearful":   (5.0, _L(1.1), _L(1.15), 4.0, _L(1.8), _L(1.3), 0.0, 0.10, 0.03),
    "disgust":   (-1.5, _L(1.1), _L(0.82), 3.0, _L(1.3), _L(1.5), 0.05, 0.05, -0.05),
    "surprised": (4.0, _L(1.9), 0.0, 5.0, 0.0, 0.0, -0.05, 0.04, 0.0),
}
# Typical size of each cue, the unit of the per-actor and per-repetition noise.
CUE_SCALE = np.array([1.5, 0.15, 0.07, 2.5, 0.15, 0.15, 0.06, 0.04, 0.03])
ACTOR_EMOTION_NOISE = 1.4        # per actor and emotion, in CUE_SCALE units
REPETITION_NOISE = 1.3           # per utterance, in CUE_SCALE units


@dataclass(frozen=True)
class Voice:
    """The fixed traits of one synthetic actor."""

    f0: float                # Hz, neutral speaking pitch
    formant_scale: float     # 1 / vocal-tract length, relative to an adult male
    breath: float
    tilt: float
    oq: float
    gain_db: float
    noise_db: float
    expressiveness: float
    emotion_offsets: dict[int, np.ndarray]   # emotion code -> cue offset


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def actor_voice(actor: int, seed: int) -> Voice:
    rng = _rng(seed, actor)
    male = gender(actor) == "male"
    f0 = float(np.exp(rng.uniform(np.log(95), np.log(145)) if male
                      else rng.uniform(np.log(175), np.log(245))))
    scale = rng.uniform(0.93, 1.05) if male else rng.uniform(1.10, 1.22)
    offsets = {code: rng.normal(0.0, ACTOR_EMOTION_NOISE, len(CUES)) * CUE_SCALE
               for code in EMOTIONS}
    return Voice(
        f0=f0, formant_scale=float(scale),
        breath=float(rng.uniform(0.03, 0.12) + (0.0 if male else 0.04)),
        tilt=float(rng.uniform(0.35, 0.6)), oq=float(rng.uniform(0.5, 0.65)),
        gain_db=float(rng.uniform(-4, 4)), noise_db=float(rng.uniform(-95, -70)),
        expressiveness=float(rng.uniform(0.6, 1.4)), emotion_offsets=offsets,
    )


def stereo_utterances(seed: int) -> set[str]:
    """Stems of the stereo files: one, drawn from the seed, for each actor of STEREO_ACTORS."""
    stems = set()
    for actor in STEREO_ACTORS:
        utterances = [u for u in full_corpus() if u.actor == actor]
        pick = _rng(seed, actor, 99).integers(len(utterances))
        stems.add(utterances[pick].stem)
    return stems


# ------------------------------------------------------------------ synthesis
def synthesise(utt: Utterance, seed: int) -> np.ndarray:
    """The waveform of one utterance: float64 `(frames,)` in [-1, 1] at 48 kHz."""
    voice = actor_voice(utt.actor, seed)
    rng = _rng(seed, utt.actor, utt.emotion, utt.intensity, utt.statement, utt.repetition)
    deviation = np.asarray(EMOTION_CUES[EMOTIONS[utt.emotion]]) + voice.emotion_offsets[utt.emotion]
    if utt.emotion == 1:  # neutral: only the actor's voice and repetition noise
        deviation = voice.emotion_offsets[1] * 0.5
    strength = voice.expressiveness * (STRONG_SCALE if utt.intensity == 2 else 1.0)
    values = deviation * strength + rng.normal(0, REPETITION_NOISE, len(CUES)) * CUE_SCALE
    cue = dict(zip(CUES, values, strict=True))
    emotion = EMOTIONS[utt.emotion]

    # --- timing: phone durations at this rate, with per-phone jitter
    rate = np.exp(cue["rate"])
    phones = STATEMENT_PHONES[utt.statement]
    durations = np.array([p.duration_ms for p in phones]) / rate
    durations *= np.exp(rng.normal(0, 0.12, len(phones)))
    n_frames = np.maximum(2, np.round(durations / 1000 * SAMPLE_RATE / FRAME)).astype(int)
    total = int(n_frames.sum())
    starts = np.concatenate([[0], np.cumsum(n_frames)[:-1]])

    # --- frame-level tracks
    formants = np.zeros((total, 3))
    voicing = np.zeros(total)
    stressed = np.zeros(total)
    for phone, start, count in zip(phones, starts, n_frames, strict=True):
        sl = slice(start, start + count)
        kind = phone.kind
        target = _VOWELS.get(phone.symbol, _VOWELS["stop"] if kind in "BP" else _VOWELS["@"])
        if kind == "D":
            ramp = np.linspace(0, 1, count)[:, None]
            formants[sl] = (1 - ramp) * np.array(target) + ramp * np.array(_I_END)
        else:
            formants[sl] = target
        voicing[sl] = {"V": 1.0, "D": 1.0, "N": 0.45, "Z": 0.5, "B": 0.12,
                       "S": 0.0, "P": 0.0, "_": 0.0}[kind]
        if phone.stressed:
            stressed[sl] = np.sin(np.linspace(0, np.pi, count))
    formants = _smooth(formants, 5) * voice.formant_scale
    formants *= np.exp(rng.normal(0, 0.03, 3))           # per-repetition articulation
    voicing = _smooth(voicing, 3)

    # pitch (semitones around the actor's f0): declination, accents, emotion level/range
    t = np.linspace(0, 1, total)
    span = np.exp(cue["range"])
    contour = (1.0 - 2.5 * t) * span + 4.0 * span * stressed
    if emotion == "surprised":
        contour += 6.0 * span * np.clip((t - 0.75) / 0.25, 0, 1) ** 2
    if emotion == "fearful":
        contour += 0.6 * strength * np.sin(2 * np.pi * 6.0 * np.arange(total) * FRAME / SAMPLE_RATE)
    jitter = 0.008 * np.exp(cue["jitter"])
    semitones = cue["pitch_st"] + contour + rng.normal(0, 1, total) * jitter * 17.3
    f0 = voice.f0 * 2 ** (semitones / 12)
    shimmer = 0.05 * np.exp(cue["shimmer"])
    amp = voicing * np.exp(rng.normal(0, shimmer, total))

    # --- glottal source at the sample rate
    f0_s = _upsample(f0)
    amp_s = _upsample(amp)
    phase = np.cumsum(f0_s / SAMPLE_RATE) + rng.uniform()
    oq = float(np.clip(voice.oq + cue["oq"], 0.35, 0.85))
    source = _glottal_derivative(phase % 1.0, oq)
    breath = float(np.clip(voice.breath + cue["breath"], 0.0, 0.8))
    aspiration = rng.normal(0, 1, source.size) * (0.5 + 0.5 * (phase % 1.0 < oq))
    source = (source + breath * 0.6 * aspiration) * amp_s
    tilt = float(np.clip(voice.tilt + cue["tilt"], 0.05, 0.95))
    source = signal.lfilter([1 - tilt], [1, -tilt], source)

    voiced = _formant_filter(source, formants, breath)
    frication = _frication(phones, starts, n_frames, total, rng)
    speech = voiced / (np.sqrt(np.mean(voiced ** 2)) + 1e-12) + frication

    # --- loudness, silences, noise floor
    level_db = -40.0 + voice.gain_db + cue["gain_db"]
    speech *= 10 ** (level_db / 20) / (np.sqrt(np.mean(speech ** 2)) + 1e-12)
    speech = np.tanh(speech / 0.9) * 0.9                   # loud takes saturate, never clip
    fade = np.minimum(1, np.minimum(np.arange(speech.size), np.arange(speech.size)[::-1]) / 480)
    speech *= fade
    lead = rng.uniform(0.55, 1.25)
    trail = rng.uniform(0.6, 1.5)
    length = speech.size / SAMPLE_RATE
    total_s = float(np.clip(lead + length + trail, MIN_DURATION_S, MAX_DURATION_S))
    lead = min(lead, max(0.2, (total_s - length) / 2))
    wave = np.zeros(int(round(total_s * SAMPLE_RATE)))
    begin = int(lead * SAMPLE_RATE)
    end = min(wave.size, begin + speech.size)
    wave[begin:end] = speech[: end - begin]
    wave += rng.normal(0, 10 ** (voice.noise_db / 20), wave.size)
    return np.clip(wave, -1.0, 1.0)


def _glottal_derivative(cycle: np.ndarray, oq: float) -> np.ndarray:
    """Derivative of a Rosenberg glottal pulse: opening over 2/3 of the open phase, closing
    over the last third (a smaller open quotient gives a sharper closure, a flatter tilt)."""
    rise = oq * 2 / 3
    fall = oq - rise
    flow = np.where(cycle < rise, 0.5 * (1 - np.cos(np.pi * cycle / rise)),
                    np.where(cycle < oq, np.cos(0.5 * np.pi * (cycle - rise) / fall), 0.0))
    return np.diff(flow, prepend=flow[0]) * 20


def _formant_filter(source: np.ndarray, formants: np.ndarray, breath: float) -> np.ndarray:
    """Cascade of five resonators (F1-F3 from the track, F4-F5 fixed), updated every 10 ms."""
    total = formants.shape[0]
    upper = np.tile([3500.0, 4500.0], (total, 1)) * (formants[:, 2:3] / 2500) ** 0.3
    freqs = np.concatenate([formants, upper], axis=1)                 # (frames, 5)
    bandwidths = np.array([80, 100, 150, 250, 300]) * (1 + 2 * breath)
    radius = np.exp(-np.pi * bandwidths / SAMPLE_RATE)               # (5,)
    theta = 2 * np.pi * freqs / SAMPLE_RATE                          # (frames, 5)
    a1 = -2 * radius * np.cos(theta)
    a2 = np.broadcast_to(radius ** 2, a1.shape)
    gain = 1 + a1 + a2                                               # unity gain at DC
    sos = np.zeros((total, 5, 6))
    sos[..., 0] = gain
    sos[..., 3] = 1.0
    sos[..., 4] = a1
    sos[..., 5] = a2
    out = np.empty_like(source)
    state = np.zeros((5, 2))
    step = FILTER_UPDATE * FRAME
    for frame in range(0, total, FILTER_UPDATE):
        sl = slice(frame * FRAME, frame * FRAME + step)
        out[sl], state = signal.sosfilt(sos[frame], source[sl], zi=state)
    return out


_BANDS = {symbol: signal.butter(2, [max(200, c - b / 2), min(20000, c + b / 2)], btype="band",
                                fs=SAMPLE_RATE, output="sos")
          for symbol, (c, b, _) in _FRICATION.items()}


def _frication(phones, starts, n_frames, total, rng) -> np.ndarray:
    """Band-passed noise for fricatives and stop bursts, in units of the voiced RMS."""
    out = np.zeros(total * FRAME)
    for phone, start, count in zip(phones, starts, n_frames, strict=True):
        if phone.symbol not in _FRICATION:
            continue
        level = _FRICATION[phone.symbol][2]
        length = count * FRAME
        if phone.kind in "BP":           # closure, then a burst over the last 25 ms
            burst = min(length, int(0.025 * SAMPLE_RATE) * (2 if phone.kind == "P" else 1))
            envelope = np.zeros(length)
            envelope[-burst:] = np.exp(-np.linspace(0, 4, burst))
        else:
            envelope = np.sin(np.linspace(0, np.pi, length)) ** 0.5
        noise = signal.sosfilt(_BANDS[phone.symbol], rng.normal(0, 1, length))
        noise /= np.sqrt(np.mean(noise ** 2)) + 1e-12
        out[start * FRAME: start * FRAME + length] += level * envelope * noise
    return out


def _smooth(track: np.ndarray, width: int) -> np.ndarray:
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    pad = width // 2
    padded = np.pad(track, [(pad, width - 1 - pad)] + [(0, 0)] * (track.ndim - 1), mode="edge")
    if track.ndim == 1:
        return np.convolve(padded, kernel, mode="valid")
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid")
                     for k in range(track.shape[1])], axis=1)


def _upsample(track: np.ndarray) -> np.ndarray:
    frames = np.arange(track.size) * FRAME + FRAME / 2
    return np.interp(np.arange(track.size * FRAME), frames, track)


# ------------------------------------------------------------------ the corpus
def to_pcm16(wave: np.ndarray) -> np.ndarray:
    return np.round(np.clip(wave, -1.0, 1.0) * 32767).astype(np.int16)


def _write(job: tuple[Path, Utterance, int, bool]) -> Path:
    path, utt, seed, stereo = job
    samples = to_pcm16(synthesise(utt, seed))
    if stereo:
        samples = np.stack([samples, samples], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return path


def generate(out_dir: Path, actors: int | Sequence[int], seed: int, progress: bool = True,
             workers: int | None = None) -> list[Path]:
    """Write `out_dir/Actor_NN/03-01-EE-II-SS-RR-NN.wav`, 60 files for each actor:
    `actors` is a count n (actors 1..n) or a list of actor numbers (1-24).

    Returns the paths written, sorted. `workers` processes synthesise in parallel
    (default: up to 2); the bytes do not depend on it, nor on which other actors are made.
    """
    chosen = set(range(1, actors + 1) if isinstance(actors, int) else actors)
    if not chosen or not chosen <= set(ACTORS) or (isinstance(actors, int) and actors < 1):
        raise ValueError(f"data.synthetic.actors must be a count 1-{len(ACTORS)} or a list of "
                         f"actors 1-{len(ACTORS)}, got {actors}")
    out_dir = Path(out_dir)
    stereo = stereo_utterances(seed)
    twins = {twin: original for actor, original, twin in TWINS if actor in chosen}
    utterances = [u for u in full_corpus() if u.actor in chosen and u.stem not in twins]
    jobs = [(out_dir / actor_dir(u.actor) / f"{u.stem}.wav", u, seed, u.stem in stereo)
            for u in utterances]
    workers = workers or min(2, os.cpu_count() or 1)
    bar = tqdm(total=len(jobs) + len(twins), desc="synthesising", unit="file",
               disable=not progress)
    if workers > 1 and len(jobs) > 60:
        with fork_pool(workers) as pool:
            for _ in pool.imap_unordered(_write, jobs, chunksize=8):
                bar.update()
    else:
        for job in jobs:
            _write(job)
            bar.update()
    for twin, original in twins.items():
        actor = int(twin[-2:])
        source = out_dir / actor_dir(actor) / f"{original}.wav"
        (out_dir / actor_dir(actor) / f"{twin}.wav").write_bytes(source.read_bytes())
        bar.update()
    bar.close()
    return sorted(out_dir.glob("Actor_*/*.wav"))

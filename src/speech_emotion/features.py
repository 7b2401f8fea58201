"""Features: read, resample, clip to a fixed length, then log-mel or MFCC with torchaudio.

One code path for the features stage, the benchmark and `predict`, so that training and
serving can never disagree. Every setting comes from `params.features` (FeatureParams).

    path --load_wave--> (samples,) at features.sample_rate
         --fix_length--> (S,) with S = round(duration_s * sample_rate)
         --Extractor--> (F, T): F = n_mels (logmel) or n_mfcc (mfcc),
                                T = 1 + S // hop_length (frames centred on multiples of hop)

`extract_files` splits the files into batches of `batch_size`; worker processes (one per
core) each take whole batches: decode and clip every file, run the Extractor on the stacked
batch and write the result into a shared-memory matrix (where processes can fork; in this
process elsewhere).
"""

from __future__ import annotations

import contextlib
import functools
import math
import mmap
import multiprocessing as mp
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import nn
from tqdm import tqdm

from . import audio
from .audio import AudioError
from .params import FeatureParams, n_bins, n_frames, n_samples  # the shapes, defined once
from .pool import default_workers, fork_pool

# Power floor before the log (librosa's `amin`): silence, e.g. padding, becomes -100 dB
# before the per-utterance `top_db` floor is applied.
POWER_FLOOR = 1e-10
# Every feature value is a whole multiple of this (dB): computed in float64, then rounded
# to this grid, so that the last-bit differences of CPU-specific kernels (at most 2e-13 dB,
# docs/REPRODUCIBILITY.md) give the same float32 bytes on every machine. 2**-10 dB is a
# power change of 0.02 %, far below anything the features resolve, and the grid's values
# up to 2**14 dB are exact in float32.
DB_STEP = 2.0 ** -10


# ---------------------------------------------------------------- one file
def load_wave(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read `path`, mix down to mono, resample to `sample_rate`: float64 `(samples,)`.

    Float64 so that no CPU-dependent rounding happens before the features' final rounding
    (see `Extractor` and docs/REPRODUCIBILITY.md). Raises AudioError naming the file when
    it is unreadable, truncated or empty.
    """
    wave, rate = audio.read(path)                        # (channels, frames) at `rate`
    return to_model_rate(wave, rate, sample_rate)


def to_model_rate(wave: np.ndarray, rate: int, sample_rate: int) -> torch.Tensor:
    """(channels, frames) at `rate` -> float64 mono `(samples,)` at `sample_rate`."""
    mono = audio.to_mono(wave).astype(np.float64)        # (frames,)
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)         # (samples,)
    return torch.from_numpy(mono)


def resample(wave: np.ndarray | torch.Tensor, orig_rate: int, new_rate: int) -> np.ndarray:
    """torchaudio's windowed-sinc resampler (`functional.resample`'s defaults) on `(frames,)`,
    computed in float64: float64 `(samples,)`.

    The same kernel and output as `torchaudio.functional.resample` in float64 (within
    1e-15), but not its conv1d: in float32 that goes through oneDNN, whose sums depend on
    the instruction set it picks (`ONEDNN_MAX_CPU_ISA=SSE41` moved 1 in 4
    samples), and in float64 ATen's generic convolution is 3-5x slower than this.
    Polyphase form: with o, n the rates over their gcd, the input in rows of o samples
    `X` (after torchaudio's `width` zeros of padding), and the kernel `(n, K)` cut into
    blocks `W[m]` of o taps, output block i (n samples) is `sum_m X[i + m] @ W[m]`.
    """
    wave = np.asarray(wave, dtype=np.float64)
    gcd = math.gcd(orig_rate, new_rate)
    if (orig_rate // gcd) * (new_rate // gcd) > POLYPHASE_MAX:
        return _resample_sparse(wave, orig_rate, new_rate)
    o, n, width, weights = _polyphase_kernel(orig_rate, new_rate)
    frames, taps = wave.shape[0], weights.shape[0]
    blocks = frames // o + 1                                    # torchaudio's conv1d outputs
    padded = np.zeros((blocks + taps - 1) * o)
    padded[width:width + frames] = wave
    rows = padded.reshape(-1, o)                                # (blocks + taps - 1, o)
    if n == 1:  # whole-number decimation (48 to 16 kHz): one pass, 2-3x faster than the loop
        windows = np.lib.stride_tricks.sliding_window_view(rows, taps, axis=0)  # (blocks, o, taps)
        out = np.einsum("bot,to->b", windows, weights[:, :, 0])
    else:
        out = rows[:blocks] @ weights[0]                        # (blocks, n)
        for m in range(1, taps):
            out += rows[m:m + blocks] @ weights[m]
    # The output length exactly as torchaudio computes it (a float32 ceil).
    length = int(torch.ceil(torch.as_tensor(n * frames / o, dtype=torch.float32)))
    return out.reshape(-1)[:length]


# Rates whose ratio stays large after the gcd (TESS's 24414 Hz to 16 kHz: 12207 to 8000)
# would make torchaudio's polyphase kernel (n, 2 width + o) huge (8000 x 12227 floats, 4 GB
# and half a minute to build) though nearly all of it is zero; above this o * n the same
# sinc weights are evaluated only where they are not (`_resample_sparse`).
POLYPHASE_MAX = 1 << 18
_SPARSE_CHUNK = 1 << 15        # output samples per step of `_resample_sparse`


def _resample_sparse(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """torchaudio's windowed-sinc resampler (Hann window, `lowpass_filter_width` 6, rolloff
    0.99) on float64 `(frames,)`, evaluating each output's weights at its own nonzero taps.

    Output j (o, n: the rates over their gcd; j = b n + i) is, as in torchaudio,
    `sum_k x[k] w(t)` with `t = (-i / n + (k - b o) / o) base` (the same float64 steps), the
    Hann-windowed sinc `w`, zero for |t| >= 6 (torchaudio clamps those to a weight of ~1e-49):
    the taps from floor(j o / n) - width to floor(j o / n) + width + 1.
    """
    gcd = math.gcd(orig_rate, new_rate)
    o, n = orig_rate // gcd, new_rate // gcd
    lowpass_width = 6
    base = min(o, n) * 0.99
    width = math.ceil(lowpass_width * o / base)
    frames = wave.shape[0]
    length = int(torch.ceil(torch.as_tensor(n * frames / o, dtype=torch.float32)))
    padded = np.zeros(frames + 2 * width + 2 + o)
    padded[width:width + frames] = wave                        # x[k] = padded[k + width]
    offsets = np.arange(-width, width + 2)                     # (S,) taps around floor(j o / n)
    out = np.empty(length)
    for start in range(0, length, _SPARSE_CHUNK):
        j = np.arange(start, min(start + _SPARSE_CHUNK, length))
        b, i = j // n, j % n
        centre = b * o + (i * o) // n                          # floor(j o / n), exactly
        k = centre[:, None] + offsets                          # (J, S) input positions
        t = (-i / n)[:, None] + (k - (b * o)[:, None]) / o
        t *= base
        np.clip(t, -lowpass_width, lowpass_width, out=t)
        window = np.cos(t * math.pi / lowpass_width / 2) ** 2
        t *= math.pi
        with np.errstate(invalid="ignore", divide="ignore"):
            weights = np.where(t == 0, 1.0, np.sin(t) / t)
        weights *= window * (base / o)
        rows = np.clip(k + width, 0, padded.shape[0] - 1)      # beyond the end: padding zeros
        out[start:start + j.shape[0]] = np.einsum("js,js->j", padded[rows], weights)
    return out


@functools.lru_cache(maxsize=16)
def _polyphase_kernel(orig_rate: int, new_rate: int) -> tuple[int, int, int, np.ndarray]:
    """(o, n, width, W): the rates over their gcd, torchaudio's padding, and its float64
    sinc kernel as `(taps, o, n)` blocks (zero-padded to a whole number of o taps)."""
    gcd = math.gcd(orig_rate, new_rate)
    o, n = orig_rate // gcd, new_rate // gcd
    kernel, width = torchaudio.functional.functional._get_sinc_resample_kernel(
        orig_rate, new_rate, gcd, dtype=torch.float64)          # (n, 1, K)
    kernel = kernel[:, 0].numpy()                               # (n, K)
    taps = -(-kernel.shape[1] // o)
    blocks = np.zeros((n, taps * o))
    blocks[:, :kernel.shape[1]] = kernel
    weights = np.ascontiguousarray(blocks.reshape(n, taps, o).transpose(1, 2, 0))
    weights.flags.writeable = False
    return o, n, width, weights


def nonsilent_span(wave: torch.Tensor, trim_db: float, frame_length: int,
                   hop_length: int) -> tuple[int, int]:
    """`(start, end)` sample positions of the audio between the first and last loud frame.

    A frame is loud when its mean power is within `trim_db` of the loudest frame's.
    Frames are centred on multiples of `hop_length` (zero padding at the ends), as in
    `librosa.effects.trim`, so the span agrees with it.
    """
    half = frame_length // 2
    n_frames = 1 + wave.shape[0] // hop_length                    # as with zero padding by half
    # Mean power of each frame from a running sum of squares (float64: no overflow, and
    # exact enough at the -trim_db threshold); the zero padding adds nothing to the sums.
    energy = torch.zeros(wave.shape[0] + 1, dtype=torch.float64)
    torch.cumsum(wave.double().square(), dim=0, out=energy[1:])   # (samples + 1,)
    centre = torch.arange(n_frames) * hop_length                  # (n_frames,)
    upper = (centre - half + frame_length).clamp(0, wave.shape[0])
    lower = (centre - half).clamp(0, wave.shape[0])
    power = (energy[upper] - energy[lower]) / frame_length        # (n_frames,)
    db = 10.0 * torch.log10(power.clamp(min=POWER_FLOOR))
    loud = torch.nonzero(db > db.max() - trim_db).flatten()       # never empty: the max is loud
    start = int(loud[0]) * hop_length
    end = min(wave.shape[0], (int(loud[-1]) + 1) * hop_length)
    return start, end


def centre_fit(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Centre-crop `(samples,)` to `length`, or zero-pad it evenly on both sides."""
    excess = wave.shape[0] - length
    if excess >= 0:
        start = excess // 2
        return wave[start:start + length]
    left = -excess // 2
    return nn.functional.pad(wave, (left, -excess - left))


def fix_length(wave: torch.Tensor, params: FeatureParams) -> torch.Tensor:
    """The clip policy, `(samples,)` -> `(n_samples(params),)`.

    `trim`: cut leading and trailing silence (frames more than `trim_db` below the loudest,
    framed with n_fft / hop_length), then centre-crop or centre-pad to `duration_s`.
    `offset`: skip the first `offset_s`, keep `duration_s`, zero-pad the end if short.
    """
    length = n_samples(params)
    if params.clip == "trim":
        start, end = nonsilent_span(wave, params.trim_db, params.n_fft, params.hop_length)
        return centre_fit(wave[start:end], length)
    if params.clip == "offset":
        skip = round(params.offset_s * params.sample_rate)
        kept = wave[skip:skip + length]
        return nn.functional.pad(kept, (0, length - kept.shape[0]))
    raise ValueError(f"features.clip: unknown policy {params.clip!r} (trim | offset)")


# ---------------------------------------------------------------- batched transform
class Extractor(nn.Module):
    """Waves `(B, samples)` -> features `(B, F, T)` float32.

    Log-mel: power mel spectrogram (Hann window, centred reflect-padded frames, Slaney mel
    scale and area normalisation, as librosa's defaults), in dB, floored at `top_db` below
    each utterance's maximum. MFCC: the orthonormal DCT-II of that log-mel, first n_mfcc.

    Computed in float64 (the filterbank, window and DCT too), every value rounded to a
    multiple of DB_STEP dB: the float32 chain's bits depended on the CPU's kernels
    (MKL's FFT and sgemm, ATen's float32 log/exp in the filterbank; docs/REPRODUCIBILITY.md).
    """

    def __init__(self, params: FeatureParams):
        super().__init__()
        self.kind = params.kind
        self.top_db = params.top_db
        with _default_dtype(torch.float64):  # torchaudio makes its tables in the default dtype
            # power=None, then re^2 + im^2 below: the same numbers as MelSpectrogram's
            # power=2, about twice as fast (complex abs() goes through hypot).
            self.stft = torchaudio.transforms.Spectrogram(
                n_fft=params.n_fft, win_length=params.win_length, hop_length=params.hop_length,
                power=None, center=True, pad_mode="reflect")
            self.mel = torchaudio.transforms.MelScale(
                n_mels=params.n_mels, sample_rate=params.sample_rate, f_min=params.f_min,
                f_max=params.f_max, n_stft=params.n_fft // 2 + 1, norm="slaney",
                mel_scale="slaney")
            if params.kind == "mfcc":
                dct = torchaudio.functional.create_dct(params.n_mfcc, params.n_mels, norm="ortho")
                self.register_buffer("dct", dct)                  # (n_mels, n_mfcc)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        waves = waves.to(torch.float64)
        spec = self.stft(waves)                                   # (B, n_fft // 2 + 1, T) complex
        power = self.mel(spec.real.square() + spec.imag.square())  # (B, n_mels, T)
        db = 10.0 * torch.log10(power.clamp(min=POWER_FLOOR))     # (B, n_mels, T)
        peak = db.amax(dim=(1, 2), keepdim=True)                  # (B, 1, 1): per utterance
        db = torch.maximum(db, peak - self.top_db)
        if self.kind == "mfcc":
            db = (db.transpose(1, 2) @ self.dct).transpose(1, 2)  # (B, n_mfcc, T)
        # Rounded once, at the end: rounding the dB before the DCT made exact ties (the
        # first coefficient is their sum / 8, a multiple of 1/8 step) that a last bit
        # decided (MKL_CBWR=COMPATIBLE moved them).
        return on_grid(db).to(torch.float32)                      # exact: values on the grid


def on_grid(values: torch.Tensor) -> torch.Tensor:
    """Round float64 dB values to the nearest multiple of DB_STEP (ties to even).

    A value moves only if a CPU's last-bit difference carries it across a midpoint of the
    grid: with differences of at most 2e-13 dB (measured) against a step of 1e-3 dB, at
    most about 4 values in 1e10 (docs/REPRODUCIBILITY.md)."""
    # + 0.0 turns -0.0 into 0.0: a value a last bit either side of zero (an MFCC of a frame
    # at the floor everywhere) rounds to -0.0 or 0.0, which are other bytes.
    return torch.round(values / DB_STEP) * DB_STEP + 0.0


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


# ---------------------------------------------------------------- many files
def _extract_batch(paths: Sequence[Path], params: FeatureParams, extractor: Extractor,
                   out: np.ndarray) -> str | None:
    """Decode, resample and clip `paths`, run the Extractor on the stacked batch and write
    the features `(B, F, T)` into `out`. A bad file comes back as its message, not raised,
    so that a worker's traceback does not bury the file name."""
    try:
        clips = [fix_length(load_wave(path, params.sample_rate), params) for path in paths]
    except AudioError as err:
        return str(err)
    with torch.inference_mode():
        feats = extractor(torch.stack(clips))                     # (B, F, T)
    finite = torch.isfinite(feats).flatten(1).all(dim=1)          # (B,)
    if not finite.all():
        bad = paths[int(torch.nonzero(~finite)[0])]
        return (f"{bad}: features are not finite (NaN or infinite); "
                "is the audio scaled far outside [-1, 1]?")
    out[:] = feats.numpy()
    return None


# The job of `extract_files`, which its forked worker processes inherit: the files, the
# params, the Extractor and the output matrix (in shared memory when there are workers).
_job: dict = {}


def _worker_batch(k: int) -> tuple[int, str | None]:
    """Batch k of the job: its features go straight into the output matrix."""
    torch.set_num_threads(1)
    size = _job["params"].batch_size
    rows = slice(k * size, (k + 1) * size)
    error = _extract_batch(_job["paths"][rows], _job["params"], _job["extractor"],
                           _job["out"][rows])
    return len(_job["paths"][rows]), error


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def extract_files(paths: Sequence[str | Path], params: FeatureParams, progress: bool = True,
                  workers: int | None = None) -> np.ndarray:
    """Features of each file in order: float32 `(N, F, T)`.

    Raises AudioError naming the first bad file: unreadable, truncated or empty audio, or
    features that come out NaN or infinite. `workers`: processes (0: in this process);
    by default one per core, or none when everything fits in one batch.

    The files go in batches of `features.batch_size`; each worker process (one per core)
    takes whole batches: it decodes and clips every file, runs the Extractor on the
    stacked batch and writes the features into one shared-memory matrix, so nothing but
    a batch number and a status crosses between processes (with DataLoader, sending each
    batch's tensors back cost about a fifth of the CPU). Where processes cannot fork
    (Windows), everything runs in this process.
    """
    paths = [Path(p) for p in paths]
    shape = (len(paths), n_bins(params), n_frames(params))
    n_batches = -(-len(paths) // params.batch_size)
    if workers is None:
        workers = min(default_workers(), n_batches) if n_batches > 1 else 0
    # One thread per process: on a busy machine torch's spinning intra-op threads made
    # the in-process path ten times slower.
    with _one_thread(), tqdm(total=len(paths), unit="utt", desc="features",
                             disable=not progress) as bar:
        fork = workers > 0 and "fork" in mp.get_all_start_methods()
        # Forked workers write into a shared anonymous mapping; in-process, a plain array.
        buffer = mmap.mmap(-1, max(1, 4 * math.prod(shape))) if fork else None
        _job.update(paths=paths, params=params, extractor=Extractor(params),
                    out=np.ndarray(shape, dtype=np.float32, buffer=buffer))
        try:
            with fork_pool(workers) if fork else contextlib.nullcontext() as pool:
                batches = pool.imap if pool is not None else map
                for done, error in batches(_worker_batch, range(n_batches)):
                    if error:
                        raise AudioError(error)
                    bar.update(done)
            return _job["out"].copy() if fork else _job["out"]
        finally:
            _job.clear()
            if buffer is not None:
                buffer.close()

"""Reading audio: one code path for the pipeline, the benchmarks and `predict`,
so that training and serving can never disagree.

Audio is read with soundfile (torchaudio's own I/O needs TorchCodec and FFmpeg).

Every reader goes through `info` or `read`, which refuse, from the header and before any
sample is decoded, a sample rate outside `MIN_SAMPLE_RATE`-`MAX_SAMPLE_RATE` and a file
longer than `MAX_SECONDS` or `MAX_SAMPLES`: what is read, and what it becomes once
resampled, stays bounded whatever the header says.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""


# Sample rates a recording of speech can have. Below 1 kHz nothing of the speech band is
# left (and a header saying 1 Hz made 20,000 frames, 40 KB, resample to 320 M samples at
# 16 kHz); 768 kHz is the highest rate of audio converters.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
# The most audio read from one file: an hour (so a resampled copy at 16 kHz is at most
# 58 M samples), and 2**28 decoded samples, frames x channels (1 GiB as float32: an hour
# of 48 kHz mono, 46 minutes of 48 kHz stereo, 5.8 minutes at 768 kHz).
MAX_SECONDS = 3600
MAX_SAMPLES = 1 << 28


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def info(path: str | Path) -> AudioInfo:
    _check_not_empty(path)
    try:
        meta = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for broken files
        raise AudioError(f"{path}: unreadable audio ({_reason(err)})") from None
    if meta.frames <= 0:
        raise AudioError(f"{path}: empty audio (0 frames)")
    check_header(path, meta.samplerate, meta.frames, meta.channels)
    return AudioInfo(meta.samplerate, meta.channels, meta.frames, meta.subtype)


def read(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a whole file as float32 `(channels, frames)` in [-1, 1] and its sample rate.

    Raises AudioError for unreadable, truncated or empty files and for non-finite samples,
    and, before decoding, for a sample rate or a length out of bounds (`check_header`).
    A header that claims more frames than the file holds is caught as truncation.
    """
    path = Path(path)
    _check_not_empty(path)
    try:
        with sf.SoundFile(str(path)) as handle:
            declared = handle.frames
            sample_rate = handle.samplerate
            # before decoding: soundfile reads at most the header's frames, now bounded
            check_header(path, sample_rate, declared, handle.channels)
            data = handle.read(dtype="float32", always_2d=True)  # (frames, channels)
            header = handle.extra_info
    except AudioError:
        raise
    except Exception as err:
        raise AudioError(f"{path}: unreadable audio ({_reason(err)})") from None
    # libsndfile quietly shortens a WAV whose data chunk runs past the end of the file;
    # its log says "data : <header bytes> (should be <bytes present>)".
    short = _DATA_SHORTFALL.search(header)
    if short:
        claimed, present = int(short[1]), int(short[2])
        if present < claimed and claimed not in _UNKNOWN_LENGTH:
            raise AudioError(f"{path}: truncated audio (header says {claimed} bytes of data, "
                             f"file holds {present})")
    # A data chunk that claims fewer bytes than follow it: libsndfile stops at the claimed
    # length and finds no chunk in the rest ("Unknown chunk marker ... Exiting parser").
    junk = _JUNK_AFTER_DATA.search(header)
    length = _FILE_LENGTH.search(header)
    if junk and length and short is None:
        after = int(length[1]) - int(junk[2])
        if after >= 8 and int(junk[1] or "1", 16) != 0:
            raise AudioError(f"{path}: malformed WAV header (the data chunk says "
                             f"{_data_bytes(header)} bytes, then {after} bytes follow that are "
                             "no WAV chunk: the header's data length is wrong)")
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 frames)")
    if declared > 0 and data.shape[0] < declared:
        raise AudioError(f"{path}: truncated audio (header says {declared} frames, "
                         f"file holds {data.shape[0]})")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    return np.ascontiguousarray(data.T), sample_rate


_DATA_SHORTFALL = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = {0, 0xFFFFFFFF}  # streaming writers' "length not known" data sizes
_JUNK_AFTER_DATA = re.compile(r"Unknown chunk marker(?: \(([0-9A-Fa-f]+)\))? at position (\d+)"
                              r"(?s:.*)Exiting parser")
_FILE_LENGTH = re.compile(r"^Length\s*:\s*(\d+)", re.MULTILINE)


def check_header(path: str | Path, sample_rate: int, frames: int, channels: int) -> None:
    """Refuse, with one line naming the file, a sample rate outside `MIN_SAMPLE_RATE`-
    `MAX_SAMPLE_RATE` or more audio than `MAX_SECONDS` and `MAX_SAMPLES` allow."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path}: sample rate {sample_rate} Hz is outside "
                         f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (a wrong header?)")
    seconds = frames / sample_rate
    if seconds > MAX_SECONDS or frames * channels > MAX_SAMPLES:
        raise AudioError(f"{path}: too long: the header says {frames} frames x {channels} "
                         f"channel(s) at {sample_rate} Hz ({seconds / 60:.1f} min); at most "
                         f"{MAX_SECONDS // 60} min and {MAX_SAMPLES} samples are read from one "
                         "file (cut it into shorter files)")


def _data_bytes(header: str) -> str:
    found = re.search(r"^data\s*:\s*(\d+)", header, re.MULTILINE)
    return found[1] if found else "?"


def _check_not_empty(path: str | Path) -> None:
    path = Path(path)
    if not path.exists():               # soundfile would say "System error."
        raise AudioError(f"{path}: no such file")
    if path.is_dir():                   # soundfile would say "Format not recognised."
        raise AudioError(f"{path}: a directory, not an audio file")
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return                          # unreadable: soundfile says why
    if empty:
        raise AudioError(f"{path}: empty file (0 bytes)")


def to_mono(wave: np.ndarray) -> np.ndarray:
    """`(channels, frames)` -> `(frames,)` by averaging the channels."""
    return wave.mean(axis=0, dtype=np.float32) if wave.shape[0] > 1 else wave[0]


def content_md5(path: str | Path) -> str:
    """md5 of the decoded samples, so identical audio is found across containers."""
    wave, sample_rate = read(path)
    digest = hashlib.md5(np.ascontiguousarray(wave).tobytes())
    digest.update(str(sample_rate).encode())
    return digest.hexdigest()


def _reason(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    # soundfile prefixes messages with "Error opening '<path>': "; the path is already said.
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text

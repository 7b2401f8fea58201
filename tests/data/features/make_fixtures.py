"""Write the audio fixtures of tests/test_feature_reproducibility.py (run once; committed).

Cut from the synthetic source (seed 0, actor 1; no RAVDESS audio, whose licence forbids
redistributing it), chosen to take every branch of the chain:

    syn48k.flac    48 kHz mono 16-bit: whole-number decimation (the RAVDESS case), with
                   leading and trailing silence to trim
    syn44k_stereo.flac  44.1 kHz stereo: the mixdown and the general polyphase path
    syn16k.flac    16 kHz mono: no resampling; 3.4 s, speech in the middle (trim at both ends)

    python tests/data/features/make_fixtures.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from speech_emotion.sources import synthetic

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.generate(Path(tmp), actors=1, seed=0, progress=False)
        files = sorted(Path(tmp).rglob("*.wav"))
        a, _ = sf.read(files[0], dtype="int16")                 # 48 kHz
        b, _ = sf.read(files[17], dtype="int16")
        c, _ = sf.read(files[42], dtype="int16")
    # 48 kHz: the first 1.6 s (silence, then speech)
    sf.write(HERE / "syn48k.flac", a[:76_800], 48_000, subtype="PCM_16")
    # 44.1 kHz stereo: 1.2 s from the middle, the right channel at 0.7 of the left
    mid = b[len(b) // 2 - 28_800: len(b) // 2 + 28_800].astype(np.float64)
    left = signal.resample_poly(mid, 147, 160)                  # 48 -> 44.1 kHz
    stereo = np.stack([left, 0.7 * left], axis=1).round().clip(-32768, 32767).astype(np.int16)
    sf.write(HERE / "syn44k_stereo.flac", stereo, 44_100, subtype="PCM_16")
    # 16 kHz: the first 3.4 s
    mono = signal.resample_poly(c[:163_200].astype(np.float64), 1, 3)
    sf.write(HERE / "syn16k.flac", mono.round().clip(-32768, 32767).astype(np.int16), 16_000,
             subtype="PCM_16")


if __name__ == "__main__":
    main()

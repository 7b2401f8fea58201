"""Feature extraction: load (downmix, resample), clip policy, transforms, batched extraction."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speech_emotion import features, params
from speech_emotion.audio import AudioError

RATE = 16000


@pytest.fixture(scope="module")
def feature_params():
    return params.load().features


def with_(p, **changes):
    return dataclasses.replace(p, **changes)


def tone(seconds: float, rate: int = RATE, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


# ---------------------------------------------------------------- transforms
@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_extractor_shapes_and_dtype(feature_params, kind):
    p = with_(feature_params, kind=kind)
    waves = torch.randn(3, features.n_samples(p)) * 0.1              # (B, samples)
    out = features.Extractor(p)(waves)
    bins = p.n_mels if kind == "logmel" else p.n_mfcc
    assert out.shape == (3, bins, 1 + features.n_samples(p) // p.hop_length)
    assert out.shape[1:] == (features.n_bins(p), features.n_frames(p))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_logmel_is_floored_per_utterance(feature_params):
    p = feature_params
    loud = torch.from_numpy(tone(p.duration_s, amp=0.9))
    loud[RATE:] = 0                                                    # 1 s loud, then silence
    quiet = loud * 1e-3                                                # the same, 60 dB quieter
    out = features.Extractor(p)(torch.stack([loud, quiet]))          # (2, F, T)
    for utterance in out:  # the silence sits at the floor: top_db below the peak, or -100 dB
        floor = max(float(utterance.max()) - p.top_db, 10 * np.log10(features.POWER_FLOOR))
        assert float(utterance.min()) == pytest.approx(floor, abs=1e-3)
    assert float(out[0].max() - out[0].min()) == pytest.approx(p.top_db, abs=1e-3)
    # each utterance keeps its own level: the quiet one is not floored by the loud one
    assert float(out[1].max()) == pytest.approx(float(out[0].max()) - 60, abs=0.01)


def test_mfcc_is_the_dct_of_the_logmel(feature_params):
    waves = torch.randn(2, features.n_samples(feature_params)) * 0.1
    logmel = features.Extractor(with_(feature_params, kind="logmel"))(waves)
    mfcc = features.Extractor(with_(feature_params, kind="mfcc"))(waves)
    n = feature_params.n_mels
    k = torch.arange(n, dtype=torch.float64)
    dct = torch.cos(torch.pi / n * (k[None, :] + 0.5) * k[:, None]) * (2 / n) ** 0.5  # (n, n)
    dct[0] /= 2 ** 0.5                                                 # orthonormal DCT-II
    expected = torch.einsum("qm,bmt->bqt", dct[: feature_params.n_mfcc], logmel.double())
    # both are rounded to the DB_STEP grid: the MFCC once, the log-mel before this DCT, by
    # at most half a step each, which a DCT row (L1 norm <= sqrt(n)) can add up
    bound = features.DB_STEP / 2 * (1 + n ** 0.5)
    assert (mfcc.double() - expected).abs().max() <= bound


@pytest.mark.parametrize("change", [{"f_max": 9000.0}, {"win_length": 1024},
                                    {"kind": "mfcc", "n_mfcc": 100}, {"duration_s": 0.01}])
def test_impossible_settings_name_the_key(feature_params, change):
    # refused by FeatureParams itself (params.FieldError, a ValueError), before any transform
    with pytest.raises(ValueError, match=f"{next(iter(change.keys() - {'kind'}))} = "):
        features.Extractor(with_(feature_params, **change))


# ---------------------------------------------------------------- reading
def test_stereo_is_mixed_down(tmp_path):
    left, right = tone(1.0, freq=440.0), tone(1.0, freq=1000.0, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    wave = features.load_wave(path, RATE)
    assert wave.shape == (RATE,) and wave.dtype == torch.float64   # float64 until the dB grid
    np.testing.assert_allclose(wave.numpy(), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [22050, 48000, 8000])
def test_any_input_rate_is_resampled(tmp_path, rate):
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(path, tone(1.5, rate=rate, freq=440.0), rate, subtype="PCM_16")
    wave = features.load_wave(path, RATE)
    assert wave.shape == (round(1.5 * RATE),)
    assert dominant_hz(wave.numpy(), RATE) == pytest.approx(440.0, abs=1.0)


@pytest.mark.parametrize("orig_rate, new_rate", [(48000, 16000), (44100, 16000), (8000, 16000),
                                                 (32000, 16000), (22050, 16000)])
def test_resampling_equals_torchaudio_in_float64(orig_rate, new_rate):
    """The polyphase form computes torchaudio's windowed-sinc resampler (its own kernel, its
    output length), only by other sums: equal to float64 rounding, at any length."""
    rng = np.random.default_rng(0)
    lengths = [orig_rate // 10, orig_rate // 10 + 1, *rng.integers(orig_rate, 5 * orig_rate, 4)]
    for length in lengths:
        wave = rng.uniform(-1, 1, int(length))
        expected = torchaudio.functional.resample(torch.from_numpy(wave), orig_rate, new_rate)
        got = features.resample(wave, orig_rate, new_rate)
        assert got.shape == tuple(expected.shape) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-12)



@pytest.mark.parametrize("orig_rate, new_rate", [(44100, 16000), (11025, 8000), (8000, 11025),
                                                 (96000, 16000)])
def test_the_sparse_form_equals_torchaudio_too(orig_rate, new_rate):
    """Rates whose reduced ratio is large (TESS's 24414 Hz: 12207 to 8000) take the sparse
    form, which evaluates torchaudio's weights at their nonzero taps only; on ratios where
    both forms run it gives torchaudio's output, and 24414 Hz takes milliseconds, not the
    half minute and 4 GB of torchaudio's kernel."""
    rng = np.random.default_rng(1)
    lengths = (orig_rate // 10, orig_rate // 10 + 1, int(rng.integers(orig_rate, 3 * orig_rate)))
    for length in lengths:
        wave = rng.uniform(-1, 1, length)
        expected = torchaudio.functional.resample(torch.from_numpy(wave), orig_rate, new_rate)
        got = features._resample_sparse(wave, orig_rate, new_rate)
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-12)
    assert 12207 * 8000 > features.POLYPHASE_MAX >= 441 * 160      # 24414 sparse, 44.1 kHz not
    start = time.perf_counter()
    tess = features.resample(tone(2.0, rate=24414, freq=440.0), 24414, 16000)
    assert time.perf_counter() - start < 2.0
    assert tess.shape == (32000,) and dominant_hz(tess, 16000) == pytest.approx(440.0, abs=1.0)

def test_features_are_on_the_db_grid(feature_params):
    """Every value is a whole multiple of DB_STEP, exact in float32; the rounding moves a
    value by at most half a step from the float64 result."""
    waves = torch.randn(2, features.n_samples(feature_params), dtype=torch.float64) * 0.1
    out = features.Extractor(feature_params)(waves)
    assert out.dtype == torch.float32
    steps = out.double() / features.DB_STEP
    assert torch.equal(steps, steps.round())
    with features._default_dtype(torch.float64):                      # float64 filterbank
        mel_spectrogram = torchaudio.transforms.MelSpectrogram(
            sample_rate=feature_params.sample_rate, n_fft=feature_params.n_fft,
            win_length=feature_params.win_length, hop_length=feature_params.hop_length,
            f_min=feature_params.f_min, f_max=feature_params.f_max,
            n_mels=feature_params.n_mels, norm="slaney", mel_scale="slaney")
    spec = mel_spectrogram(waves)
    db = 10 * torch.log10(spec.clamp(min=features.POWER_FLOOR))
    db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - feature_params.top_db)
    assert (out.double() - db).abs().max() <= features.DB_STEP / 2 + 1e-9


# ---------------------------------------------------------------- clip policy
def speech_in_silence(lead_s: float, speech_s: float, tail_s: float) -> torch.Tensor:
    """Silence (faint noise, -80 dB), a tone, silence: the tone's span is known exactly."""
    noise = np.random.default_rng(0).normal(0, 1e-4, round((lead_s + speech_s + tail_s) * RATE))
    wave = noise.astype(np.float32)
    start = round(lead_s * RATE)
    wave[start:start + round(speech_s * RATE)] += tone(speech_s)
    return torch.from_numpy(wave)


def test_trim_finds_the_known_speech(feature_params):
    p = feature_params
    wave = speech_in_silence(1.0, 1.2, 1.5)
    start, end = features.nonsilent_span(wave, p.trim_db, p.n_fft, p.hop_length)
    # frames are n_fft long: the edges are found to within half a frame plus one hop
    slack = p.n_fft // 2 + p.hop_length
    assert abs(start - 1.0 * RATE) <= slack
    assert abs(end - 2.2 * RATE) <= slack


def test_trim_then_centre_pad(feature_params):
    p = with_(feature_params, clip="trim", duration_s=3.0)
    wave = speech_in_silence(1.0, 1.2, 1.5)                             # 3.7 s long
    clip = features.fix_length(wave, p)
    assert clip.shape == (features.n_samples(p),)
    loud = torch.nonzero(clip.abs() > 0.01).flatten()
    # the 1.2 s of speech sits in the middle of the 3 s clip
    middle = (int(loud[0]) + int(loud[-1])) / 2
    assert abs(middle - 1.5 * RATE) <= p.hop_length
    assert (int(loud[-1]) - int(loud[0])) / RATE == pytest.approx(1.2, abs=0.01)
    # padding is exact zeros, the leading silence is gone
    assert clip[: int(1.5 * RATE - 0.6 * RATE) - p.n_fft].abs().max() == 0


def test_trim_then_centre_crop(feature_params):
    p = with_(feature_params, clip="trim", duration_s=1.0)
    wave = torch.from_numpy(tone(2.5))                                 # no silence to trim
    clip = features.fix_length(wave, p)
    start = (len(wave) - RATE) // 2
    assert torch.equal(clip, wave[start:start + RATE])


def test_offset_policy(feature_params):
    p = with_(feature_params, clip="offset", offset_s=0.5, duration_s=1.0)
    wave = torch.arange(3 * RATE, dtype=torch.float32)
    assert torch.equal(features.fix_length(wave, p), wave[RATE // 2: RATE // 2 + RATE])
    short = wave[: RATE]                                               # 0.5 s left after offset
    clip = features.fix_length(short, p)
    assert torch.equal(clip[: RATE // 2], short[RATE // 2:])
    assert (clip[RATE // 2:] == 0).all() and clip.shape == (RATE,)


# ---------------------------------------------------------------- many files
@pytest.fixture
def mixed_files(tmp_path):
    """Files of several rates, channel counts and lengths."""
    rng = np.random.default_rng(1)
    specs = [(48000, 1, 3.5), (22050, 2, 2.0), (16000, 1, 4.2), (44100, 1, 1.0), (48000, 2, 3.0)]
    paths = []
    for i, (rate, channels, seconds) in enumerate(specs):
        wave = rng.normal(0, 0.05, (round(seconds * rate), channels)).astype(np.float32)
        wave[: rate // 4] *= 1e-3                                      # a quiet lead-in
        paths.append(tmp_path / f"file{i}.wav")
        sf.write(paths[-1], wave, rate, subtype="PCM_16")
    return paths


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_extract_files_in_workers_matches_one_by_one(feature_params, mixed_files, kind):
    p = with_(feature_params, kind=kind, batch_size=2)                 # 3 batches, 2 workers
    out = features.extract_files(mixed_files, p, progress=False, workers=2)
    assert out.shape == (len(mixed_files), features.n_bins(p), features.n_frames(p))
    assert out.dtype == np.float32
    extractor = features.Extractor(p)
    for path, row in zip(mixed_files, out, strict=True):
        one = extractor(features.fix_length(features.load_wave(path, p.sample_rate), p)[None])[0]
        np.testing.assert_allclose(row, one.numpy(), atol=1e-3)


def test_extract_files_is_deterministic(feature_params, mixed_files):
    p = with_(feature_params, batch_size=2)
    first = features.extract_files(mixed_files, p, progress=False, workers=2)
    again = features.extract_files(mixed_files, p, progress=False, workers=0)
    assert first.tobytes() == again.tobytes()


def bad_file(kind: str, path):
    if kind == "unreadable":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio" * 10)
    elif kind == "truncated":
        sf.write(path, tone(1.0), RATE, subtype="PCM_16")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])                        # header says 1 s
    elif kind == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), RATE, subtype="PCM_16")
    return path


BAD = {"unreadable": "unreadable", "truncated": "truncated", "empty": "empty"}


def test_huge_samples_give_finite_features(feature_params, tmp_path):
    """Samples far outside [-1, 1] overflowed the float32 power (and were refused as 'not
    finite'); in float64 any finite float32 audio gives finite features (below 800 dB)."""
    path = tmp_path / "huge.wav"
    sf.write(path, np.full(RATE, 1e30, dtype=np.float32), RATE, subtype="FLOAT")
    out = features.extract_files([path], feature_params, progress=False, workers=0)
    assert np.isfinite(out).all() and out.max() < 800


def test_non_finite_features_name_the_file(feature_params, mixed_files, monkeypatch):
    """The guard stays for features that come out NaN or infinite all the same."""
    forward = features.Extractor.forward
    monkeypatch.setattr(features.Extractor, "forward",
                        lambda self, waves: forward(self, waves) * float("inf"))
    with pytest.raises(AudioError, match=f"{mixed_files[0].name}.*not finite"):
        features.extract_files(mixed_files, with_(feature_params, batch_size=2),
                               progress=False, workers=0)


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_file_is_named(feature_params, mixed_files, tmp_path, kind):
    bad = bad_file(kind, tmp_path / f"bad_{kind.replace('-', '_')}.wav")
    paths = mixed_files[:3] + [bad] + mixed_files[3:]
    with pytest.raises(AudioError, match=f"{bad.name}.*{BAD[kind]}"):
        features.extract_files(paths, with_(feature_params, batch_size=2), progress=False,
                               workers=2)

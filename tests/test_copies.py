"""Training copies of each utterance for the heads (`encode.copies`): the changes that make
them (sessions of an actor: one room, voice or codec each, seeded), and their place in
training: beside the training rows of a fold, never its validation or test rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speech_emotion import training, waveforms
from speech_emotion.params import ParamsError, load

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000


def speech(seed: int = 0, seconds: float = 1.0) -> np.ndarray:
    """A voiced-sounding wave: a 150 Hz pulse train through a resonance, with silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = np.sin(2 * np.pi * 150 * t) ** 9 * 0.3 + rng.standard_normal(t.shape) * 0.002
    wave[: RATE // 10] = 0.0
    return wave


def impulse(n: int = RATE) -> np.ndarray:
    wave = np.zeros(n)
    wave[0] = 1.0
    return wave


def apply(kind, copy, speaker, utterance, wave, seed=0):
    change, rng = waveforms.training_copies([kind] * (copy + 1), copy + 1, seed, speaker,
                                            utterance)[copy]
    return change(wave, RATE, rng)


def test_the_same_seed_gives_the_same_copy_and_another_seed_another():
    wave = speech()
    for kind in waveforms.COPY_KINDS:
        first = apply(kind, 0, "1", "u1", wave)
        np.testing.assert_array_equal(first, apply(kind, 0, "1", "u1", wave))
        assert np.isfinite(first).all()
        if kind != "voice":        # a voice session's speed: one of six, may draw the same
            assert not np.array_equal(first, apply(kind, 0, "1", "u1", wave, seed=1)), kind


def test_a_room_is_one_room_for_a_session_and_another_for_another_actor():
    # the response to an impulse is the room: the same for two utterances of a session
    one = apply("room", 0, "7", "utterance-a", impulse())
    np.testing.assert_array_equal(one, apply("room", 0, "7", "utterance-b", impulse()))
    assert not np.allclose(one, apply("room", 0, "8", "utterance-a", impulse()))
    assert not np.allclose(one, apply("room", 1, "7", "utterance-a", impulse()))
    tail = np.flatnonzero(np.abs(one) > 1e-6)[-1] / RATE            # it decays in RT60
    assert waveforms.ROOM_RT60_S[0] * 0.5 < tail <= waveforms.ROOM_RT60_S[1]


def test_a_voice_session_plays_faster_or_slower_by_one_factor():
    wave = speech()
    lengths = {len(apply("voice", 0, "3", u, wave)) for u in ("a", "b", "c")}
    assert len(lengths) == 1                                        # one factor a session
    factor = len(wave) / lengths.pop()
    assert min(abs(factor - up / 25) for up in waveforms.VOICE_SPEEDS) < 1e-3
    assert factor != 1.0


def test_noise_is_added_at_an_snr_in_the_range():
    wave = speech()
    noisy = apply("noise", 0, "2", "u", wave)
    added = noisy - wave
    snr = 10 * np.log10(waveforms.speech_power(wave, **{
        "trim_db": 40.0, "n_fft": 400, "hop": 160}) / np.mean(added ** 2))
    assert waveforms.NOISE_SNR_DB[0] - 0.5 < snr < waveforms.NOISE_SNR_DB[1] + 0.5


def test_copy_kinds_cycle_and_an_unknown_kind_is_named():
    assert [waveforms.copy_kind(["room", "voice"], k) for k in range(4)] == \
        ["room", "voice", "room", "voice"]
    with pytest.raises(ValueError, match="hum"):
        waveforms.training_copy("hum", 0, 0, "1", "u")


def test_copies_need_a_kind():
    with pytest.raises(ParamsError, match="copy_kinds"):
        load(ROOT / "params.yaml", {"encode.copies": 2, "encode.copy_kinds": []})
    with pytest.raises(ParamsError, match="copy_kinds"):
        load(ROOT / "params.yaml", {"encode.copy_kinds": ["hum"]})


def test_copies_follow_the_training_rows_as_sessions_of_their_own():
    x = np.arange(3 * 2 * 1, dtype=np.float32).reshape(3, 2, 1)
    copies = np.stack([x + 100, x + 200], axis=1)                   # (3, K=2, 2, 1)
    x_all, y_all, speakers = training.with_copies(x, np.array([0, 1, 2]), np.array([5, 5, 6]),
                                                  copies)
    np.testing.assert_array_equal(x_all, np.concatenate([x, x + 100, x + 200]))
    assert y_all.tolist() == [0, 1, 2] * 3
    assert speakers.tolist() == [5, 5, 6, "5~copy1", "5~copy1", "6~copy1",
                                 "5~copy2", "5~copy2", "6~copy2"]
    with pytest.raises(ValueError, match="2 rows of copies for 3"):
        training.with_copies(x, np.zeros(3), np.zeros(3), copies[:2])


@pytest.mark.parametrize("monitor", ["none", "ua"])
def test_no_copy_of_a_validation_or_test_actor_reaches_training(synthetic_table, monitor):
    """The copies of the rows a fold does not train on are poisoned (NaN): one of them in
    any statistic, loss or batch would make the weights NaN."""
    table = synthetic_table
    rng = np.random.default_rng(0)
    features = rng.standard_normal((len(table), 2 * 8, 3)).astype(np.float32)
    copies = np.stack([features + 0.1, features - 0.1], axis=1)     # (N, 2, F, L)
    p = load(ROOT / "params.yaml", {"train.epochs": 2, "split.folds": [1],
                                    "train.workers": 1, "train.monitor": monitor,
                                    "train.speaker_norm.models": ["whisper_mlp"]})
    from speech_emotion.folds import from_split, split_rows
    fold = from_split(table["actor"], p.split, log=lambda *a, **k: None)[0]
    sides = split_rows(table, fold)
    trained = np.concatenate([sides.train] + ([sides.validation] if monitor == "none" else []))
    poisoned = np.setdiff1d(np.arange(len(table)), trained)
    assert len(poisoned) >= 60 * (1 + (monitor == "ua"))  # the test actor (and validation)
    copies[poisoned] = np.nan
    saved = {}
    summaries = training.train_cell(
        "whisper_mlp", "all", p, table, features, {}, save=saved.__setitem__,
        progress=False, log=lambda *a, **k: None, copies=copies)
    state = saved[1]["state_dict"]
    assert all(np.isfinite(v.numpy()).all() for v in state.values())
    assert summaries[0]["train_rows"] == 3 * len(trained)           # the originals and 2 copies

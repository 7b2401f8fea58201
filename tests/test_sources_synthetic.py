"""The synthetic corpus: deterministic bytes, RAVDESS format, emotion cues present."""

import numpy as np
import pytest
import soundfile as sf

from speech_emotion import audio
from speech_emotion.ravdess import parse_name
from speech_emotion.sources import synthetic


def test_same_seed_same_bytes_whatever_the_workers(synthetic_corpus, tmp_path):
    # The fixture was made with 2 worker processes and 6 actors; this with 1 process, 1 actor.
    files = synthetic.generate(tmp_path, actors=1, seed=0, progress=False, workers=1)
    assert len(files) == 60
    for path in files:
        original = synthetic_corpus / "Actor_01" / path.name
        assert path.read_bytes() == original.read_bytes(), path.name


def test_another_seed_other_audio(synthetic_corpus):
    utt = parse_name("03-01-05-02-01-01-01")
    one, other = synthetic.synthesise(utt, seed=0), synthetic.synthesise(utt, seed=1)
    assert one.shape != other.shape or not np.array_equal(one, other)
    reread, _ = sf.read(str(synthetic_corpus / "Actor_01" / f"{utt.stem}.wav"), dtype="int16")
    assert np.array_equal(reread, synthetic.to_pcm16(one))


def test_format_as_the_real_data(synthetic_corpus, synthetic_table):
    assert set(synthetic_table["sample_rate"]) == {48000}
    assert set(synthetic_table["subtype"]) == {"PCM_16"}
    assert synthetic_table["duration_s"].between(2.9, 5.3).all()
    assert synthetic_table["duration_s"].std() > 0.2
    stereo = synthetic_table[synthetic_table["channels"] == 2]
    assert 1 <= len(stereo) <= 3                     # a few, as in RAVDESS (actors 1 and 5 here)
    wave, _ = audio.read(synthetic_corpus / stereo["path"].iloc[0])
    assert wave.shape[0] == 2 and np.array_equal(wave[0], wave[1])


def _rms_db(x):
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)


def test_leading_and_trailing_silence(synthetic_corpus, synthetic_table):
    # Quiet takes sit 17-30 dB above their noise floor (as quiet calm and sad takes do in
    # RAVDESS); most are 30-60 dB above it.
    for path in synthetic_table["path"].iloc[::23]:
        wave, rate = audio.read(synthetic_corpus / path)
        x = audio.to_mono(wave)
        head, tail, body = x[: rate // 5], x[-rate // 5:], x[rate: -rate]
        assert _rms_db(body) - _rms_db(head) > 15 and _rms_db(body) - _rms_db(tail) > 15, path


def test_emotions_carry_loudness_and_pitch_cues(synthetic_corpus, synthetic_table):
    """Angry (strong) is louder than neutral for most actors; the cues exist, the classes
    overlap."""
    loudness = {}
    for row in synthetic_table.itertuples():
        loudest = "normal" if row.emotion == 1 else "strong"
        if row.emotion_name in ("neutral", "angry") and row.intensity_name == loudest:
            wave, _ = audio.read(synthetic_corpus / row.path)
            level = _rms_db(audio.to_mono(wave))
            loudness.setdefault((row.actor, row.emotion_name), []).append(level)
    louder = [np.mean(loudness[(a, "angry")]) > np.mean(loudness[(a, "neutral")])
              for a in range(1, 7)]
    assert sum(louder) >= 5


def test_the_voice_depends_on_gender():
    male = [synthetic.actor_voice(a, 0) for a in range(1, 25, 2)]
    female = [synthetic.actor_voice(a, 0) for a in range(2, 25, 2)]
    assert max(v.f0 for v in male) < min(v.f0 for v in female)
    assert max(v.formant_scale for v in male) < min(v.formant_scale for v in female)


def test_twins_as_in_the_real_corpus(tmp_path):
    # Only Actor_07 has twins; check the rule without generating 7 actors.
    assert synthetic.TWINS == ((7, "03-01-03-01-02-01-07", "03-01-03-01-02-02-07"),)


def test_actor_count_is_checked(tmp_path):
    with pytest.raises(ValueError, match="1-24"):
        synthetic.generate(tmp_path, actors=25, seed=0, progress=False)


def test_a_list_of_actors_makes_those_actors_the_same_files_as_a_count(tmp_path):
    """`data.synthetic.actors: [1, 3]` makes actors 01 and 03, each file byte for byte what
    a count that includes them makes (every file depends only on seed, actor and codes)."""
    listed = synthetic.generate(tmp_path / "listed", actors=[1, 3], seed=0, progress=False,
                                workers=1)
    counted = synthetic.generate(tmp_path / "counted", actors=3, seed=0, progress=False,
                                 workers=1)
    assert sorted({p.parent.name for p in listed}) == ["Actor_01", "Actor_03"]
    by_name = {p.relative_to(tmp_path / "counted"): p for p in counted}
    for path in listed:
        assert path.read_bytes() == by_name[path.relative_to(tmp_path / "listed")].read_bytes()
    with pytest.raises(ValueError, match="list of actors 1-24"):
        synthetic.generate(tmp_path / "bad", actors=[0, 25], seed=0, progress=False)

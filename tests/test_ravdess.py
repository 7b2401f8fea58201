"""File-name parsing and validation over every code and the bad cases."""

import pytest

from speech_emotion import ravdess
from speech_emotion.ravdess import RavdessNameError, parse_name


def test_every_utterance_of_the_corpus_round_trips():
    corpus = ravdess.full_corpus()
    assert len(corpus) == 1440 and len({u.stem for u in corpus}) == 1440
    for utt in corpus:
        for name in (utt.stem, f"{utt.stem}.wav", f"{utt.stem}.flac", f"Actor_01/{utt.stem}.WAV"):
            assert parse_name(name) == utt


@pytest.mark.parametrize("emotion", sorted(ravdess.EMOTIONS))
@pytest.mark.parametrize("intensity", sorted(ravdess.INTENSITIES))
def test_names_and_codes(emotion, intensity):
    name = f"03-01-{emotion:02d}-{intensity:02d}-02-01-14.wav"
    if emotion == ravdess.NEUTRAL and intensity == ravdess.STRONG:
        with pytest.raises(RavdessNameError, match="neutral has no strong"):
            parse_name(name)
        return
    utt = parse_name(name)
    assert utt.emotion_name == ravdess.EMOTIONS[emotion]
    assert utt.intensity_name == ravdess.INTENSITIES[intensity]
    assert utt.statement_text == "Dogs are sitting by the door"
    assert (utt.repetition, utt.actor, utt.gender) == (1, 14, "female")


@pytest.mark.parametrize("actor", ravdess.ACTORS)
def test_every_actor_and_gender(actor):
    utt = parse_name(f"03-01-05-02-01-02-{actor:02d}.flac")
    assert utt.actor == actor
    assert utt.gender == ("male" if actor % 2 else "female")


@pytest.mark.parametrize("name, problem", [
    ("01-01-05-01-01-01-01.wav", "modality 01 (full-AV)"),
    ("02-01-05-01-01-01-01.wav", "modality 02 (video-only)"),
    ("04-01-05-01-01-01-01.wav", "unknown modality 04"),
    ("03-02-05-01-01-01-01.wav", "vocal channel 02 (song)"),
    ("03-03-05-01-01-01-01.wav", "vocal channel 03"),
    ("03-01-00-01-01-01-01.wav", "emotion code 00 out of range"),
    ("03-01-09-01-01-01-01.wav", "emotion code 09 out of range"),
    ("03-01-05-00-01-01-01.wav", "intensity code 00 out of range"),
    ("03-01-05-03-01-01-01.wav", "intensity code 03 out of range"),
    ("03-01-05-01-03-01-01.wav", "statement code 03 out of range"),
    ("03-01-05-01-01-03-01.wav", "repetition code 03 out of range"),
    ("03-01-05-01-01-01-00.wav", "actor code 00 out of range"),
    ("03-01-05-01-01-01-25.wav", "actor code 25 out of range"),
    ("03-01-01-02-01-01-01.wav", "neutral has no strong intensity"),
    ("03-01-05-01-01-01.wav", "not a RAVDESS name"),
    ("03-01-05-01-01-01-01-01.wav", "not a RAVDESS name"),
    ("03-01-5-01-01-01-01.wav", "not a RAVDESS name"),
    ("03-01-aa-01-01-01-01.wav", "not a RAVDESS name"),
    ("03-01-05-01-01-01-01.mp3", "not a RAVDESS name"),
    ("readme.txt", "not a RAVDESS name"),
])
def test_bad_names_say_what_is_wrong(name, problem):
    with pytest.raises(RavdessNameError) as err:
        parse_name(name)
    assert name in str(err.value) and problem in str(err.value)


def test_several_problems_are_all_reported():
    with pytest.raises(RavdessNameError) as err:
        parse_name("03-02-09-01-01-01-30.wav")
    message = str(err.value)
    assert "vocal channel 02" in message and "emotion code 09" in message
    assert "actor code 30" in message


def test_speech_audio_name_filter():
    assert ravdess.is_speech_audio_name("Actor_01/03-01-05-01-01-01-01.wav")
    assert ravdess.is_speech_audio_name("03-01-05-01-01-01-01.FLAC")
    assert not ravdess.is_speech_audio_name("03-02-05-01-01-01-01.wav")     # song
    assert not ravdess.is_speech_audio_name("01-01-05-01-01-01-01.mp4")     # video
    assert not ravdess.is_speech_audio_name("03-01-05-01-01-01-01.txt")


def test_subsets():
    assert len(ravdess.SUBSETS["all"]) == 8 and len(ravdess.SUBSETS["normal"]) == 8
    assert len(ravdess.SUBSETS["strong"]) == 7 and "neutral" not in ravdess.SUBSETS["strong"]

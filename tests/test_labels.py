"""data.csv: columns, audio facts, validation listing every bad file, twins, intensity split."""

import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from speech_emotion import atomic, labels
from speech_emotion.labels import COLUMNS, LabelsError, build_table, split_by_intensity
from speech_emotion.sources import local

GOOD = "Actor_02/03-01-05-02-01-01-02.wav"


def test_table_follows_the_contract(synthetic_table):
    table = synthetic_table
    assert tuple(table.columns) == COLUMNS
    assert len(table) == 6 * 60
    assert table["path"].is_monotonic_increasing and table["path"].is_unique
    assert table["path"].iloc[0] == "Actor_01/03-01-01-01-01-01-01.wav"
    row = table.set_index("path").loc[GOOD]
    assert (row.stem, row.emotion, row.intensity, row.statement, row.repetition, row.actor) == \
        ("03-01-05-02-01-01-02", 5, 2, 1, 1, 2)
    assert (row.emotion_name, row.intensity_name, row.gender) == ("angry", "strong", "female")
    assert row.statement_text == "Kids are talking by the door"
    assert (row.sample_rate, row.subtype) == (48000, "PCM_16")
    assert row.duration_s == pytest.approx(row.frames / 48000, abs=1e-6)
    assert len(row.md5) == 32
    assert set(table["actor"]) == set(range(1, 7))
    assert (table.groupby("actor").size() == 60).all()


def test_audio_facts_come_from_the_audio(synthetic_corpus, synthetic_table):
    for row in synthetic_table.iloc[::37].itertuples():
        info = sf.info(str(synthetic_corpus / row.path))
        assert ((row.frames, row.channels, row.sample_rate)
                == (info.frames, info.channels, info.samplerate))
    assert (synthetic_table["channels"] == 2).sum() >= 1


def test_csv_round_trip_keeps_types(synthetic_table, tmp_path):
    atomic.write_csv(tmp_path / "data.csv", synthetic_table)
    back = labels.read_table(tmp_path / "data.csv")
    pd.testing.assert_frame_equal(back, synthetic_table)


def test_split_by_intensity(synthetic_table):
    parts = split_by_intensity(synthetic_table)
    assert set(parts) == {"strong", "normal"}
    assert len(parts["strong"]) == 6 * 28 and len(parts["normal"]) == 6 * 32
    assert set(parts["strong"]["intensity_name"]) == {"strong"}
    assert parts["strong"]["emotion_name"].nunique() == 7
    assert "neutral" not in set(parts["strong"]["emotion_name"])
    assert parts["normal"]["emotion_name"].nunique() == 8
    assert tuple(parts["strong"].columns) == COLUMNS
    together = pd.concat(parts.values()).sort_values("path")
    assert together["path"].tolist() == synthetic_table["path"].tolist()


def test_split_refuses_strong_neutral(synthetic_table):
    bad = synthetic_table.copy()
    bad.loc[0, ["emotion", "intensity"]] = [1, 2]
    with pytest.raises(ValueError, match="strong neutral"):
        split_by_intensity(bad)


def _small_raw(corpus, root, names=(GOOD, "Actor_01/03-01-03-01-02-02-01.wav")):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / name, root / name)
    return root


def test_twins_are_marked(synthetic_corpus, tmp_path):
    raw = _small_raw(synthetic_corpus, tmp_path / "raw")
    shutil.copyfile(raw / GOOD, raw / "Actor_02/03-01-05-02-01-02-02.wav")
    table = build_table(raw)
    assert table["duplicate"].tolist() == [False, True, True]
    assert labels.twins(table) == [["Actor_02/03-01-05-02-01-01-02.wav",
                                    "Actor_02/03-01-05-02-01-02-02.wav"]]


def test_same_samples_in_flac_and_wav_are_twins(synthetic_corpus, tmp_path):
    raw = _small_raw(synthetic_corpus, tmp_path / "raw")
    wave, rate = sf.read(str(raw / GOOD), dtype="int16")
    sf.write(str(raw / "Actor_02/03-01-05-02-01-02-02.flac"), wave, rate, subtype="PCM_16")
    table = build_table(raw)
    assert table["duplicate"].sum() == 2


def test_every_offending_file_is_listed(synthetic_corpus, tmp_path):
    raw = _small_raw(synthetic_corpus, tmp_path / "raw")
    good = (raw / GOOD).read_bytes()
    bad = {
        "Actor_02/recording.wav": "not a RAVDESS name",
        "Actor_02/03-01-09-01-01-01-02.wav": "emotion code 09 out of range",
        "Actor_02/03-01-05-01-01-01-30.wav": "actor code 30 out of range",
        "Actor_02/03-02-05-01-01-01-02.wav": "vocal channel 02 (song)",
        "Actor_02/01-01-05-01-01-01-02.wav": "modality 01 (full-AV)",
        "Actor_02/03-01-01-02-01-01-02.wav": "neutral has no strong intensity",
        "Actor_03/03-01-05-01-01-01-02.wav": "disagrees with folder Actor_03",
        "Actor_02/02-01-05-01-01-01-02.mp4": "not an audio file",
        "03-01-05-01-01-01-02.wav": "not inside an Actor_NN/ folder",
        "Actor_2/03-01-05-01-01-01-02.wav": "not inside an Actor_NN/ folder",
    }
    for name in bad:
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_bytes(good)
    (raw / "Actor_02/03-01-06-01-01-01-02.wav").write_bytes(b"RIFF not really audio")
    bad["Actor_02/03-01-06-01-01-01-02.wav"] = "unreadable audio"
    sf.write(str(raw / "Actor_02/03-01-07-01-01-01-02.wav"), np.zeros((0, 1)), 48000)
    bad["Actor_02/03-01-07-01-01-01-02.wav"] = "empty audio"
    (raw / "Actor_02/03-01-08-01-01-01-02.wav").write_bytes(good[: len(good) // 2])
    bad["Actor_02/03-01-08-01-01-01-02.wav"] = "truncated audio"
    shutil.copyfile(raw / GOOD, raw / "Actor_02/03-01-05-02-01-01-02.flac")
    bad[GOOD] = "the same utterance as Actor_02/03-01-05-02-01-01-02.flac"
    with pytest.raises(LabelsError) as err:
        build_table(raw)
    message = str(err.value)
    assert len(err.value.problems) == len(bad), message
    for name, problem in bad.items():
        line = next((p for p in err.value.problems if p.startswith(name + ":")), None)
        assert line is not None, f"{name} not listed in:\n{message}"
        assert problem in line, line
    assert "Actor_01/03-01-03-01-02-02-01.wav" not in message


def test_missing_or_empty_raw_folder(tmp_path):
    with pytest.raises(LabelsError, match="no such folder"):
        build_table(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelsError, match="no audio files found"):
        build_table(tmp_path / "empty")


@pytest.mark.slow
def test_real_development_copy(ravdess_dev, tmp_path):
    """The real data (actors 01-12) through the local source: 720 utterances, 3 stereo
    files, one pair of twins."""
    local.copy_corpus(ravdess_dev, tmp_path / "raw", progress=False)
    table = build_table(tmp_path / "raw")
    assert len(table) == 720
    parts = split_by_intensity(table)
    assert (len(parts["strong"]), len(parts["normal"])) == (336, 384)
    assert sorted(table.loc[table["channels"] == 2, "stem"]) == [
        "03-01-02-01-01-02-01", "03-01-02-01-02-02-05", "03-01-08-01-02-02-01"]
    assert labels.twins(table) == [["Actor_07/03-01-03-01-02-01-07.flac",
                                    "Actor_07/03-01-03-01-02-02-07.flac"]]
    assert set(table["sample_rate"]) == {48000}
    assert table["duration_s"].between(2.8, 5.4).all()

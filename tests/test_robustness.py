"""benchmarks/robustness.py: each fold model on its own test actors only, once per change
of the recording; the clean row is the model's plain score of those utterances."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speech_emotion import checkpoint, features, metrics
from speech_emotion.checkpoint import load_model
from speech_emotion.folds import Fold
from speech_emotion.inference import predict_proba

from random_models import save_random_cell, small_feature_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import robustness  # noqa: E402

FOLDS = [Fold(1, (1, 2), (3, 4), (5, 6)), Fold(2, (5, 6), (1, 2), (3, 4))]


def actors_read(monkeypatch) -> list[str]:
    """The actor folder of every file robustness.py reads, in order (filled as it reads)."""
    seen: list[str] = []
    original = robustness.features.load_wave

    def spy(path, rate):
        seen.append(Path(path).parent.name)
        return original(path, rate)

    monkeypatch.setattr(robustness.features, "load_wave", spy)
    return seen


def test_each_fold_scores_its_own_test_actors_under_every_condition(
        synthetic_corpus, synthetic_table, tmp_path, capsys, monkeypatch):
    model = save_random_cell(tmp_path / "cnn-all", small_feature_params(), FOLDS)
    data = tmp_path / "data.csv"
    synthetic_table.to_csv(data, index=False)
    seen = actors_read(monkeypatch)
    assert robustness.main([str(model), "--data", str(data), "--raw", str(synthetic_corpus),
                            "--limit", "12"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("| condition | fold 1 | fold 2 | mean UA (%)")
    assert [line.split(" | ")[0] for line in out[3:]] == [
        "| clean", "| level-20dB", "| level+10dB", "| noise-snr20", "| noise-snr10",
        "| telephone", "| 8khz"]
    # fold 1 read only actors 01-02, fold 2 only 05-06
    assert set(seen[:12]) == {"Actor_01"} and set(seen[12:]) == {"Actor_05"}
    # the clean row is the fold model's plain score of its first 12 test utterances
    params = small_feature_params()
    rows = synthetic_table[synthetic_table["actor"].isin([1, 2])].iloc[:12]
    clips = torch.stack([features.fix_length(features.load_wave(synthetic_corpus / p,
                                                                params.sample_rate), params)
                         for p in rows["path"]])
    net, saved = load_model(model / "fold1.pt")
    proba = predict_proba(net, saved, features.Extractor(params)(clips).numpy())
    ua = metrics.figures(rows["emotion_name"], [saved["labels"][k]
                                                for k in proba.argmax(axis=1)])["ua"]
    assert out[3].split(" | ")[1] == f"{100 * ua:.1f}"


def test_the_changes_do_what_they_say():
    rate = 8000
    t = np.arange(rate) / rate
    wave = 0.1 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 100 * t)
    rng = np.random.default_rng(0)
    params = small_feature_params()
    change = robustness.conditions(params)
    assert np.allclose(change["level-20dB"](wave, rate, rng), wave / 10)
    assert np.abs(change["level+10dB"](wave * 8, rate, rng)).max() == 1.0
    noisy = change["noise-snr10"](wave, rate, rng) - wave
    assert 10 * np.log10(np.mean(wave ** 2) / np.mean(noisy ** 2)) == pytest.approx(10, abs=0.3)
    phone = change["telephone"](wave, rate, rng)[rate // 2:]       # after the filter settles
    spectrum = np.abs(np.fft.rfft(phone))
    freqs = np.fft.rfftfreq(phone.shape[0], 1 / rate)
    assert spectrum[np.argmin(abs(freqs - 100))] < 0.05 * spectrum[np.argmin(abs(freqs - 1000))]
    assert change["8khz"](wave, rate, rng).shape == wave.shape



def test_the_voice_changes_do_what_they_say():
    """Speed moves pitch and length together by the ratio; the room keeps the level and
    smears the sound in time; mu-law keeps the wave within 8-bit steps."""
    rate = 8000
    t = np.arange(2 * rate) / rate
    wave = 0.3 * np.sin(2 * np.pi * 200 * t)
    change = robustness.conditions(small_feature_params(), "voices")
    assert set(change) == {"clean", "speed0.9", "speed1.1", "reverb0.6s", "mu-law"}
    assert "level-20dB" in robustness.conditions(small_feature_params(), "all")

    def peak(x):
        return np.fft.rfftfreq(x.shape[0], 1 / rate)[np.abs(np.fft.rfft(x)).argmax()]
    for name, ratio in (("speed0.9", 0.9), ("speed1.1", 1.1)):
        changed = change[name](wave, rate, np.random.default_rng(0))
        assert changed.shape[0] == pytest.approx(wave.shape[0] / ratio, abs=2)
        assert peak(changed) == pytest.approx(200 * ratio, abs=2)
    clicks = np.zeros(rate)
    clicks[::rate // 4] = 1.0
    room = change["reverb0.6s"](clicks, rate, np.random.default_rng(0))
    assert room.shape == clicks.shape and np.mean(room ** 2) == pytest.approx(np.mean(clicks ** 2))
    assert np.count_nonzero(np.abs(room) > 1e-3) > 50 * np.count_nonzero(clicks)   # a tail
    again = change["reverb0.6s"](clicks, rate, np.random.default_rng(0))
    assert np.array_equal(room, again)                           # drawn from the rng given
    coded = change["mu-law"](wave, rate, None)
    assert 0 < np.abs(coded - wave).max() < 0.02 and len(np.unique(coded)) <= 256


def test_validation_actors_score_where_a_recipe_is_chosen(synthetic_corpus, synthetic_table,
                                                          tmp_path, capsys, monkeypatch):
    """--actors validation reads each fold's validation actors only, writes --out, and refuses
    a cell whose validation actors trained too (train.monitor: none)."""
    model = save_random_cell(tmp_path / "cnn-all", small_feature_params(), FOLDS)
    data = tmp_path / "data.csv"
    synthetic_table.to_csv(data, index=False)
    args = [str(model), "--data", str(data), "--raw", str(synthetic_corpus), "--limit", "6",
            "--actors", "validation", "--out", str(tmp_path / "v.json")]
    with pytest.raises(SystemExit, match="train.monitor: none"):
        robustness.main(args)
    for path in model.glob("fold*.pt"):
        saved = torch.load(path, weights_only=False)
        checkpoint.save(path, {**saved, "monitor": "ua"})
    seen = actors_read(monkeypatch)
    assert robustness.main(args) == 0
    assert set(seen[:6]) == {"Actor_03"} and set(seen[6:]) == {"Actor_01"}
    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["actors"] == "validation" and sorted(saved["ua"]) == ["1", "2"]
    assert list(saved["ua"]["1"]) == list(robustness.conditions(small_feature_params()))
    capsys.readouterr()
    assert robustness.main(["--table", str(tmp_path / "v.json")]) == 0
    row = capsys.readouterr().out.splitlines()[2].strip("| ").split(" | ")
    means = [sum(fold[c] for fold in saved["ua"].values()) / 2 for c in saved["ua"]["1"]]
    assert row[:3] == ["v", "validation", "2"]
    assert row[3:] == [f"{100 * m:.1f}" for m in means] + [f"{100 * sum(means[1:]) / 6:.1f}",
                                                           f"{100 * sum(means) / 7:.1f}"]


def test_speaker_normalisation_uses_each_actors_own_statistics(synthetic_corpus,
                                                               synthetic_table, tmp_path):
    """--normalise speaker: the clean UA is the model's score with each test actor's
    features normalised by that actor's per-bin mean and std, not the training ones."""
    model = save_random_cell(tmp_path / "cnn-all", small_feature_params(), FOLDS[:1])
    params = small_feature_params()
    rows = synthetic_table[synthetic_table["actor"].isin([1, 2])]
    rows = rows.groupby("actor").head(6).reset_index(drop=True)        # 6 of each test actor
    ua = robustness.score_fold(model / "fold1.pt", rows, synthetic_corpus, [0], 0, None,
                               log=lambda *a, **k: None, normalise="speaker")
    net, saved = load_model(model / "fold1.pt")
    predicted = []
    for actor in (1, 2):
        mine = rows[rows["actor"] == actor]
        clips = torch.stack([features.fix_length(features.load_wave(
            synthetic_corpus / p, params.sample_rate), params) for p in mine["path"]])
        x = features.Extractor(params)(clips)
        own = {"mean": x.mean(dim=(0, 2)), "std": x.std(dim=(0, 2))}
        proba = predict_proba(net, {**saved, "normalisation": own}, x.numpy())
        predicted += [saved["labels"][k] for k in proba.argmax(axis=1)]
    assert ua["clean"] == pytest.approx(metrics.figures(rows["emotion_name"], predicted)["ua"])


def test_a_raw_folder_alone_is_labelled_as_the_labels_stage_does(synthetic_corpus,
                                                                 synthetic_table, tmp_path,
                                                                 capsys):
    model = save_random_cell(tmp_path / "cnn-all", small_feature_params(), FOLDS[:1])
    data = tmp_path / "data.csv"
    synthetic_table.to_csv(data, index=False)
    shipped = tmp_path / "ravdess"              # the corpus as shipped: a README beside it
    shipped.mkdir()
    for actor in synthetic_corpus.glob("Actor_*"):
        (shipped / actor.name).symlink_to(actor, target_is_directory=True)
    (shipped / "README.md").write_text("the licence")
    tables = []
    for extra in (["--data", str(data)], []):
        assert robustness.main([str(model), "--raw", str(shipped), "--limit", "4",
                                *extra]) == 0
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1]


def test_fuse_averages_two_cells_per_condition(synthetic_corpus, synthetic_table, tmp_path):
    """--fuse: at head weight 1 the fusion scores as the model alone, at 0 as the other
    (each member's own UA recorded beside it); a cell of other folds is refused."""
    model = save_random_cell(tmp_path / "a" / "cnn-all", small_feature_params(), FOLDS)
    other = save_random_cell(tmp_path / "b" / "cnn-all", small_feature_params(), FOLDS, seed=1)
    data = tmp_path / "data.csv"
    synthetic_table.to_csv(data, index=False)
    common = ["--data", str(data), "--raw", str(synthetic_corpus), "--limit", "12"]

    def run(weight):
        out = tmp_path / "run.json"
        assert robustness.main([str(model), "--fuse", str(other), "--head-weight", weight,
                                *common, "--out", str(out)]) == 0
        saved = json.loads(out.read_text())
        members = {who: {k: by[who] for k, by in saved["members_ua"].items()}
                   for who in ("head", "model")}
        return saved, members

    fused, members = run("1")
    assert members["head"] != members["model"]          # else the test proves nothing
    assert fused["ua"] == members["head"]
    fused, members = run("0")
    assert fused["ua"] == members["model"] and fused["head_weight"] == 0.0
    shifted = save_random_cell(tmp_path / "c" / "cnn-all", small_feature_params(),
                               [Fold(1, (3, 4), (1, 2), (5, 6)), Fold(2, (5, 6), (1, 2), (3, 4))])
    with pytest.raises(SystemExit, match="not the same fold"):
        robustness.main([str(model), "--fuse", str(shifted), *common])

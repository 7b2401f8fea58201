"""Linear probes: fitted on training actors only, scored on test actors, in the shared
metrics schema; the speaker probe; alignment checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speech_emotion import probe
from speech_emotion.folds import make_folds, split_rows
from speech_emotion.ravdess import EMOTION_NAMES

from _representation_data import corpus_table, tiny_params

ACTORS = (1, 2, 3, 4, 11, 12, 5, 6)


@pytest.fixture(scope="module")
def table():
    return corpus_table(ACTORS)


@pytest.fixture(scope="module")
def fold(table):
    return make_folds(table["actor"], "emobox", [1], 2, 0)[0]


def _latents(table, emotion_signal=3.0, actor_signal=0.0, seed=0):
    """Columns z_0..z_9: emotion one-hot (x signal) + actor code + noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (len(table), 10))
    codes = table["emotion"].to_numpy() - 1
    x[np.arange(len(table)), codes] += emotion_signal
    x[:, 8] += actor_signal * table["actor"].to_numpy()
    x[:, 9] += actor_signal * (table["actor"].to_numpy() % 3)
    frame = pd.DataFrame(x, columns=[f"z_{i}" for i in range(10)])
    frame.insert(0, "stem", table["stem"].to_numpy())
    return frame


def test_emotion_probe_never_fits_on_test_actors(table, fold):
    p = tiny_params().probe
    x = _latents(table)[[f"z_{i}" for i in range(10)]].to_numpy()
    base = probe.emotion_predictions(x, table, fold, p)
    test = split_rows(table, fold).test
    assert set(base["actor"]) == set(fold.test_actors)
    # scramble everything the test actors carry: labels and representations
    shuffled = table.copy()
    shuffled.loc[test, "emotion_name"] = np.roll(table.loc[test, "emotion_name"].to_numpy(), 5)
    x2 = x.copy()
    x2[test] = np.random.default_rng(9).normal(0, 1, x2[test].shape)
    changed = probe.emotion_predictions(x2, shuffled, fold, p)
    # the fitted probe is the same: on any fixed input it predicts the same
    refit = probe.make_probe(p)
    sides = split_rows(table, fold)
    fit = np.sort(np.concatenate([sides.train, sides.validation]))
    assert not np.isin(table["actor"].to_numpy()[fit], fold.test_actors).any()
    refit = probe._fit(refit, x[fit], table["emotion_name"].to_numpy()[fit])
    assert (changed["predicted"].to_numpy() == refit.predict(x2[test])).all()
    assert (base["predicted"].to_numpy() == refit.predict(x[test])).all()


def test_probe_cell_schema_and_figures_follow_the_signal(table, fold):
    p = tiny_params().probe
    strong = _latents(table, emotion_signal=4.0)
    noise = _latents(table, emotion_signal=0.0)
    good = probe.probe_cell({1: strong}, table, [fold], "all", p)
    bad = probe.probe_cell({1: noise}, table, [fold], "all", p)
    for key in ("ua", "wa", "macro_f1", "ua_sd", "n_folds", "folds", "classes",
                "by_intensity", "by_gender", "speaker_acc", "speaker_chance", "groups"):
        assert key in good, key
    assert list(good["classes"]) == list(EMOTION_NAMES)
    assert good["n_folds"] == 1 and good["folds"]["fold1"]["test_actors"] == [1, 11]
    assert good["representation"] == "z" and good["dimensions"] == 10
    assert good["ua"] > 0.8
    assert bad["ua"] < 0.35                       # chance is 1/8


def test_speaker_probe_sees_only_test_actors_and_reads_identity(table, fold):
    p = tiny_params().probe
    x = _latents(table, emotion_signal=0.0, actor_signal=3.0)
    cols = [f"z_{i}" for i in range(10)]
    result = probe.speaker_probe(x[cols].to_numpy(), table, fold, p)
    assert result["actors"] == [1, 11] and result["chance"] == 0.5
    assert result["accuracy"] > 0.95
    # the fit uses test actors' first repetitions only, the score the second ones
    assert result["n_utterances"] == int(((table["repetition"] == 2)
                                          & table["actor"].isin(fold.test_actors)).sum())
    one = table[table["actor"] != 11].reset_index(drop=True)
    fold_one = make_folds(one["actor"], "emobox", [1], 2, 0)[0]
    assert probe.speaker_probe(_latents(one)[cols].to_numpy(), one, fold_one, p) is None


def test_misaligned_latents_are_refused(table, fold):
    p = tiny_params().probe
    latents = _latents(table).iloc[::-1].reset_index(drop=True)
    with pytest.raises(probe.ProbeError, match="does not line up"):
        probe.probe_cell({1: latents}, table, [fold], "all", p)
    with pytest.raises(probe.ProbeError, match="no latents for fold 2"):
        probe.probe_cell({1: _latents(table)}, table,
                         make_folds(table["actor"], "emobox", [1, 2], 2, 0), "all", p)


def test_groups_are_probed_side_by_side(table, fold):
    p = tiny_params().probe
    z2 = _latents(table, emotion_signal=4.0).rename(columns=lambda c: c.replace("z_", "z2_"))
    z1 = _latents(table, emotion_signal=0.0, seed=1).drop(columns="stem")
    latents = pd.concat([z2, z1.rename(columns=lambda c: c.replace("z_", "z1_"))], axis=1)
    result = probe.probe_cell({1: latents}, table, [fold], "all", p)
    assert list(result["groups"]) == ["z2", "z1"] and result["representation"] == "z2"
    assert result["groups"]["z2"]["ua"] > result["groups"]["z1"]["ua"]
    fig = probe.groups_figure(result, "test")
    assert len(fig.axes) == 1

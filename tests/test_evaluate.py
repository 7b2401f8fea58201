"""evaluate: each fold model scores only its fold's test actors, and a checkpoint of
another fold, subset or feature params is refused before anything is scored."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from speech_emotion import evaluate, params
from speech_emotion.checkpoint import load, save
from speech_emotion.evaluate import EvaluateError
from speech_emotion.folds import EMOBOX_FOLDS, from_split, subset_table
from speech_emotion.ravdess import full_corpus
from speech_emotion.store import FeatureSet, StoreError

from random_models import REPO, save_random_cell, small_feature_params


def corpus_table(actors):
    """data.csv columns that evaluate reads, for every utterance of `actors`."""
    rows = [u for u in full_corpus() if u.actor in actors]
    return pd.DataFrame({
        "path": [f"Actor_{u.actor:02d}/{u.stem}.wav" for u in rows],
        "actor": [u.actor for u in rows],
        "emotion_name": [u.emotion_name for u in rows],
        "intensity_name": [u.intensity_name for u in rows],
        "md5": [u.stem for u in rows],                           # every utterance distinct
    })


def run_params(feature_params, folds):
    overrides = {f"features.{k}": v for k, v in dataclasses.asdict(feature_params).items()}
    return params.load(REPO / "params.yaml", {**overrides, "split.protocol": "emobox",
                                              "split.folds": folds})


@pytest.fixture(scope="module")
def setup():
    feature_params = small_feature_params()
    table = corpus_table(range(1, 13))          # 12 actors, like ../shared/ravdess-dev
    rng = np.random.default_rng(0)
    feats = rng.normal(-40, 20, size=(len(table), 16, 101)).astype(np.float32)
    store = FeatureSet(feats, table[["path"]].copy(), dataclasses.asdict(feature_params))
    return feature_params, table, store


@pytest.mark.parametrize("subset", ["all", "strong"])
def test_scores_only_the_test_actors_of_each_fold(tmp_path, setup, subset):
    feature_params, table, store = setup
    run = run_params(feature_params, [1, 2])
    folds = from_split(subset_table(table, subset)["actor"], run.split, log=lambda *a, **k: None)
    model_dir = save_random_cell(tmp_path / f"cnn-{subset}", feature_params, folds, subset)
    result = evaluate.evaluate_cell(model_dir, subset, table, store, run, progress=False,
                                    log=lambda *a, **k: None)
    pred = result.predictions
    present = set(range(1, 13))
    for number in (1, 2):
        tested = set(pred.loc[pred["fold"] == number, "actor"])
        assert tested == set(EMOBOX_FOLDS[number]) & present
    per_actor = 60 if subset == "all" else 28
    assert len(pred) == per_actor * len(set(pred["actor"]))
    m = result.metrics
    assert m["n_folds"] == 2 and m["n_utterances"] == len(pred)
    assert m["folds"]["fold1"]["test_actors"] == [1, 11]     # 20, 21 are not among the 12
    assert ("by_intensity" in m) == (subset == "all")
    assert len(result.confusion) == len(pred)
    assert {r["actual"] for r in result.confusion} <= set(load(model_dir / "fold1.pt")["labels"])


def test_refuses_a_checkpoint_of_another_fold(tmp_path, setup):
    feature_params, table, store = setup
    run = run_params(feature_params, [1])
    folds = from_split(table["actor"], run.split, log=lambda *a, **k: None)
    model_dir = save_random_cell(tmp_path / "cnn-all", feature_params, folds)
    checkpoint = load(model_dir / "fold1.pt")
    checkpoint["fold"]["test_actors"] = [2, 3]           # trained with actor 1 in its training set
    save(model_dir / "fold1.pt", checkpoint)
    with pytest.raises(EvaluateError, match=r"fold1.pt: .*test_actors \[2, 3\]"):
        evaluate.evaluate_cell(model_dir, "all", table, store, run, progress=False)


def test_refuses_other_feature_params_subset_or_missing_fold(tmp_path, setup):
    feature_params, table, store = setup
    run = run_params(feature_params, [1])
    folds = from_split(table["actor"], run.split, log=lambda *a, **k: None)
    other = save_random_cell(tmp_path / "cnn-all", small_feature_params(n_mels=20), folds)
    with pytest.raises(EvaluateError, match=r"feature params differ from features.h5.*n_mels"):
        evaluate.evaluate_cell(other, "all", table, store, run, progress=False)
    strong = save_random_cell(tmp_path / "cnn-strong", feature_params, folds, "strong")
    with pytest.raises(EvaluateError, match="subset 'strong'"):
        evaluate.evaluate_cell(strong, "all", table, store, run, progress=False)
    with pytest.raises(EvaluateError, match="no checkpoint for fold1"):
        evaluate.evaluate_cell(tmp_path / "empty", "all", table, store, run, progress=False)
    # features.h5 made with other params than params.yaml now says: refused by the store check.
    with pytest.raises(StoreError, match="hop_length"):
        evaluate.evaluate_cell(other, "all", table, store,
                               run_params(small_feature_params(hop_length=100), [1]),
                               progress=False)


def test_an_oracle_scores_one_so_rows_and_labels_line_up(tmp_path, setup, monkeypatch):
    """Features that carry each utterance's class, read back by an oracle in place of the
    network: UA = WA = macro-F1 = 1 only if features, rows and labels line up."""
    feature_params, table, store = setup
    run = run_params(feature_params, [1, 2])
    folds = from_split(table["actor"], run.split, log=lambda *a, **k: None)
    model_dir = save_random_cell(tmp_path / "cnn-all", feature_params, folds)
    classes = list(load(model_dir / "fold1.pt")["labels"])
    feats = store.features.copy()
    feats[:, 0, :] = table["emotion_name"].map(classes.index).to_numpy()[:, None]

    def oracle(model, checkpoint, features, **kwargs):
        return np.eye(len(checkpoint["labels"]))[np.asarray(features)[:, 0, 0].astype(int)]

    monkeypatch.setattr("speech_emotion.inference.predict_proba", oracle)
    result = evaluate.evaluate_cell(model_dir, "all", table,
                                    FeatureSet(feats, store.index, store.attrs), run,
                                    progress=False)
    m = result.metrics
    assert m["ua"] == m["wa"] == m["macro_f1"] == 1.0 and m["ua_sd"] == 0.0
    assert all(r["actual"] == r["predicted"] for r in result.confusion)


def test_probabilities_per_class_and_the_validation_side(tmp_path, setup):
    """Each row carries one probability per class (summing to one, its argmax the
    prediction); the validation side scores only the held-out validation actors, and only
    of a model that held them out (train.monitor: ua | loss)."""
    feature_params, table, store = setup
    run = run_params(feature_params, [1, 2])
    folds = from_split(table["actor"], run.split, log=lambda *a, **k: None)
    model_dir = save_random_cell(tmp_path / "cnn-all", feature_params, folds)
    labels = list(load(model_dir / "fold1.pt")["labels"])
    test, protocol = evaluate.cell_probabilities(model_dir, "all", table, store, run,
                                                 progress=False)
    assert protocol == "utterance-only"
    np.testing.assert_allclose(test[labels].sum(axis=1), 1.0, atol=1e-5)
    assert list(test["predicted"]) == [labels[i] for i in test[labels].to_numpy().argmax(1)]
    with pytest.raises(EvaluateError, match="train.monitor: none"):   # no monitor recorded
        evaluate.cell_probabilities(model_dir, "all", table, store, run, side="validation",
                                    progress=False)
    for fold in folds:
        path = model_dir / f"fold{fold.number}.pt"
        save(path, {**load(path), "monitor": "ua"})
    held, _ = evaluate.cell_probabilities(model_dir, "all", table, store, run,
                                          side="validation", progress=False)
    for fold in folds:
        assert set(held.loc[held["fold"] == fold.number, "actor"]) == set(fold.validation_actors)
    with pytest.raises(ValueError, match="side 'train'"):
        evaluate.cell_probabilities(model_dir, "all", table, store, run, side="train")

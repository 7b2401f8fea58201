"""train.speaker_norm: each speaker standardised by its own unlabelled audio, by one piece
of code (normalisation.py) in training, evaluate, predict and external alike."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from speech_emotion import checkpoint, evaluate, external, features, predict, training
from speech_emotion.checkpoint import CheckpointError, load_model
from speech_emotion.external import Recording
from speech_emotion.folds import Fold
from speech_emotion.inference import predict_proba
from speech_emotion.normalisation import fit_normalisation, normalise, speaker_statistics
from speech_emotion.ravdess import SUBSETS
from speech_emotion.store import FeatureSet

from random_models import save_random_cell, small_feature_params, with_speaker_norm

FOLDS = [Fold(1, (1, 11, 20, 21), (2, 3), (4, 5, 6))]


def speech_like(seconds, rate, pitch, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.2 * np.sin(2 * np.pi * 3 * t))) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = ((t > 0.1) & (t < seconds - 0.1)).astype(float)
    return (0.3 * voiced * envelope + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    plain = save_random_cell(root / "cnn-all", small_feature_params(), FOLDS)
    return {"plain": plain, "speaker": with_speaker_norm(plain, root / "speaker" / "cnn-all"),
            "shrunk": with_speaker_norm(plain, root / "shrunk" / "cnn-all", prior=5.0)}


@pytest.fixture(scope="module")
def speaker_files(tmp_path_factory):
    """Five recordings of one voice, and the same five 9 dB quieter."""
    folder = tmp_path_factory.mktemp("speaker")
    out = {"clean": [], "quiet": []}
    for i in range(5):
        wave = speech_like(1.0, 16000, 120 + 25 * i, seed=i)
        for kind, data in (("clean", wave), ("quiet", wave * 10 ** (-9 / 20))):
            path = folder / f"{kind}{i}.wav"
            sf.write(path, data, 16000, subtype="FLOAT")
            out[kind].append(path)
    return out


def test_each_training_speaker_is_standardised_by_its_own_statistics():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, s, size=(30, 4, 10)) for m, s in ((-50, 5), (-20, 15))])
    speakers = np.repeat(["a", "b"], 30)
    stats = fit_normalisation(x, speakers=speakers, speaker_prior=0.0)
    z = normalise(torch.as_tensor(x), stats,
                  speaker_statistics(x, speakers, stats["speaker"])).numpy()
    for who in ("a", "b"):
        rows = z[speakers == who]
        np.testing.assert_allclose(rows.mean(axis=(0, 2)), 0, atol=1e-5)
        np.testing.assert_allclose(rows.std(axis=(0, 2)), 1, atol=1e-2)
    # the prior pulls a speaker of few utterances toward the training statistics
    one = speaker_statistics(x[:1], ["a"], {**stats["speaker"], "prior": 5.0})[0]
    own = x[:1].mean(axis=(0, 2))
    assert np.all(np.abs(one[0, :, 0].numpy() - stats["speaker"]["mean"].numpy())
                  < np.abs(own - stats["speaker"]["mean"].numpy()))


def test_a_speaker_at_another_level_gets_the_same_probabilities(cells, speaker_files):
    """predict --speaker: the same voice 9 dB quieter gets the same probabilities from a
    speaker-normalised model (prior 0), not from the plain one."""
    def scores(folder, files):
        cell = predict.load_cell_models(folder)
        extractor = features.Extractor(cell.feature_params)
        inputs = [predict.file_inputs(f, cell, extractor) for f in files]
        return np.array([list(p.probabilities.values()) for p in
                         predict.score_inputs(cell, inputs, [0], ["s"] * len(inputs))])

    clean, quiet = speaker_files["clean"], speaker_files["quiet"]
    adapted = np.abs(scores(cells["speaker"], clean) - scores(cells["speaker"], quiet)).max()
    plain = np.abs(scores(cells["plain"], clean) - scores(cells["plain"], quiet)).max()
    assert adapted <= 2e-4 and plain > 1e-3


def test_a_speaker_through_another_channel_gets_the_same_probabilities(cells):
    """A fixed channel (microphone, room, codec's EQ) and level add one offset per mel bin
    to a speaker's dB log-mel: the speaker's own statistics take it away exactly."""
    model, ckpt = load_model(cells["speaker"] / "fold1.pt")
    rng = np.random.default_rng(3)
    x = rng.normal(-40, 15, size=(6, 16, 101)).astype(np.float32)
    channel = rng.normal(0, 8, size=(1, 16, 1)).astype(np.float32) - 9.0
    speakers = ["s"] * 6
    np.testing.assert_allclose(predict_proba(model, ckpt, x + channel, speakers=speakers),
                               predict_proba(model, ckpt, x, speakers=speakers), atol=1e-5)
    plain, plain_ckpt = load_model(cells["plain"] / "fold1.pt")
    assert np.abs(predict_proba(plain, plain_ckpt, x + channel)
                  - predict_proba(plain, plain_ckpt, x)).max() > 1e-3


def test_predict_speaker_external_and_evaluate_agree_on_the_same_files(
        cells, speaker_files, capsys):
    files = speaker_files["clean"]
    assert predict.main([*map(str, files), "--model", str(cells["shrunk"]), "--speaker",
                         "--json", "--shifts", "0"]) == 0
    import json
    printed = json.loads(capsys.readouterr().out)["predictions"]
    by_predict = np.array([list(p["probabilities"].values()) for p in printed])

    corpus = external.Corpus("c", files[0].parent,
                             [Recording(f.name, "angry", "s1") for f in files])
    cell = external.load_cell("cnn-all", cells["shrunk"])
    inputs = external.corpus_inputs(corpus, cell)
    by_external = np.array([list(p.probabilities.values()) for p in predict.score_inputs(
        cell.loaded, inputs, [0], external.speakers_of(corpus))])
    np.testing.assert_allclose(by_external, by_predict, atol=1e-4)

    # evaluate: the same features (one window each: 1 s files, 1 s clips) as one actor's rows
    model, ckpt = load_model(cells["shrunk"] / "fold1.pt")
    x = np.concatenate([i.features for i in inputs])
    by_evaluate = predict_proba(model, ckpt, x, speakers=[4] * len(x))
    np.testing.assert_allclose(by_evaluate, by_predict, atol=1e-4)
    # each file on its own (no --speaker) is another, utterance-only, score
    alone = predict_proba(model, ckpt, x)
    assert np.abs(alone - by_evaluate).max() > 1e-3


def test_no_test_label_reaches_a_statistic(tmp_path):
    """evaluate under speaker_norm: the test actors' labels shuffled, the same predictions."""
    from test_evaluate import corpus_table, run_params

    from speech_emotion.folds import from_split

    feature_params = small_feature_params()
    table = corpus_table(range(1, 13))
    rng = np.random.default_rng(0)
    feats = rng.normal(-40, 20, size=(len(table), 16, 101)).astype(np.float32)
    feats += rng.normal(0, 10, size=(25, 16, 1)).astype(np.float32)[table["actor"]]
    store = FeatureSet(feats, table[["path"]].copy(), dataclasses.asdict(feature_params))
    p = run_params(feature_params, [1])
    folds = from_split(table["actor"], p.split, log=lambda *a, **k: None)
    plain_dir = save_random_cell(tmp_path / "plain" / "cnn-all", feature_params, folds)
    speaker_dir = with_speaker_norm(plain_dir, tmp_path / "speaker" / "cnn-all")
    shuffled = table.copy()
    test = shuffled["actor"].isin(folds[0].test_actors).to_numpy()
    shuffled.loc[test, "emotion_name"] = rng.permutation(shuffled.loc[test, "emotion_name"])
    got = [evaluate.evaluate_cell(speaker_dir, "all", t, store, p, progress=False)
           for t in (table, shuffled)]
    assert got[0].metrics["protocol"] == "speaker-adaptive"
    pd.testing.assert_series_equal(got[0].predictions["predicted"],
                                   got[1].predictions["predicted"])
    plain = evaluate.evaluate_cell(plain_dir, "all", table, store, p, progress=False)
    assert plain.metrics["protocol"] == "utterance-only"


def test_training_records_the_speaker_statistics_and_scoring_needs_them():
    from test_training import tiny_params

    rng = np.random.default_rng(1)
    p = tiny_params()
    train = dataclasses.replace(p.train, epochs=1, speaker_norm=dataclasses.replace(
        p.train.speaker_norm, models=["cnn"], prior=2.0))
    x = rng.normal(-40, 20, size=(24, 16, 50)).astype(np.float32)
    y = np.arange(24) % 8
    data = training.FoldData(x[:16], y[:16], x[16:], y[16:], np.repeat([1, 2], 8),
                             np.repeat([3], 8))
    result = training.train_fold("cnn", p.cnn, train, data, list(SUBSETS["all"]), seed=0,
                                 feature_params={"kind": "logmel"}, progress=False)
    speaker = result["normalisation"]["speaker"]
    assert speaker["prior"] == 2.0 and speaker["per_frame"] is False
    with pytest.raises(ValueError, match="speaker statistics"):
        normalise(torch.as_tensor(x), result["normalisation"])
    with pytest.raises(ValueError, match="needs each row's speaker"):
        training.train_fold("cnn", p.cnn, train, dataclasses.replace(data, speakers_train=None),
                            list(SUBSETS["all"]), seed=0, feature_params={"kind": "logmel"},
                            progress=False)


def test_a_checkpoint_with_a_malformed_speaker_field_is_refused(cells, tmp_path):
    saved = checkpoint.load(cells["speaker"] / "fold1.pt")
    saved["normalisation"]["speaker"]["mean"] = torch.zeros(3)
    checkpoint.save(tmp_path / "fold1.pt", saved)
    with pytest.raises(CheckpointError, match=r"fold1.pt: checkpoint field "
                                              r"normalisation.speaker.mean"):
        checkpoint.load(tmp_path / "fold1.pt")


def test_an_older_head_checkpoint_without_the_new_fields_still_loads(tmp_path):
    """A whisper_mlp checkpoint saved before speaker_norm and the head's layer settings
    (no normalisation.speaker, no layer_weighting or layer_dropout) loads and scores as
    it was trained: utterance-only, learnt layer weights."""
    from speech_emotion import models
    from speech_emotion.params import WhisperMLPConfig

    old_config = {"layers": "all", "statistics": ["mean"], "hidden": 8, "dropout": 0.1}
    torch.manual_seed(0)
    model = models.build("whisper_mlp", WhisperMLPConfig(**old_config, layer_weighting="learnt",
                                                         layer_dropout=0.0), 16, 8, 3)
    checkpoint.save(tmp_path / "fold1.pt", {
        "state_dict": model.state_dict(), "model": "whisper_mlp", "config": old_config,
        "labels": list(SUBSETS["all"]),
        "normalisation": {"mean": torch.zeros(16, 3), "std": torch.ones(16, 3)},
        "feature_params": {"d_model": 8, "n_states": 3}, "fold": {"number": 1},
        "subset": "all", "best_epoch": 1})
    loaded, ckpt = load_model(tmp_path / "fold1.pt")
    x = np.random.default_rng(0).normal(size=(4, 16, 3)).astype(np.float32)
    expected = torch.softmax(model.eval()(torch.as_tensor(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(predict_proba(loaded, ckpt, x), expected, atol=1e-6)


def test_external_reads_each_file_once_for_every_cell_of_one_front_end(
        cells, speaker_files, monkeypatch):
    """Three cells with the same feature params: each recording is read and made into
    features once, not once per cell; each cell's scores are what predict gives it."""
    calls = []
    real = predict.file_inputs
    monkeypatch.setattr(predict, "file_inputs",
                        lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    files = speaker_files["clean"]
    corpus = external.Corpus("c", files[0].parent,
                             [Recording(f.name, e, "s1")
                              for f, e in zip(files, ["angry", "sad", "happy", "angry", "sad"],
                                              strict=True)])
    loaded = [external.load_cell(f"cnn-all-{k}", cells[k]) for k in ("plain", "speaker",
                                                                      "shrunk")]
    scored = dict((cell.name, s) for cell, s in external.score_corpus(corpus, loaded, [0]))
    assert sorted(calls) == sorted(corpus.root / r.path for r in corpus.recordings)
    assert set(scored) == {"cnn-all-plain", "cnn-all-speaker", "cnn-all-shrunk"}


def test_pooled_statistics_are_those_of_the_utterances_means():
    """A frame head's statistics (`pooled`): per bin, of each utterance's mean over its
    frames, so a standardised utterance mean has unit spread, however its frames spread;
    each speaker's the same way, from its own utterances."""
    rng = np.random.default_rng(0)
    means = rng.normal(0, 0.5, size=(40, 6, 1))
    x = torch.as_tensor(means + rng.normal(0, 5.0, size=(40, 6, 16)))   # frames spread 10x
    speakers = np.repeat(["a", "b"], 20)
    x[20:] += 3.0                                                     # speaker b: offset
    stats = fit_normalisation(x, pooled=True, speakers=speakers, speaker_prior=0.0)
    assert stats["speaker"]["pooled"] is True and stats["mean"].shape == (6,)
    own = speaker_statistics(x, speakers, stats["speaker"])
    pooled = normalise(x.float(), stats, tuple(t.float() for t in own)).mean(dim=2)  # (N, F)
    torch.testing.assert_close(pooled.std(dim=0), torch.ones(6), atol=1e-3, rtol=0)
    torch.testing.assert_close(pooled[:20].mean(0), pooled[20:].mean(0), atol=1e-3, rtol=0)
    frame = fit_normalisation(x, speakers=speakers)                   # per frame: far smaller
    by_frame = normalise(x.float(), frame, tuple(t.float() for t in speaker_statistics(
        x, speakers, frame["speaker"]))).mean(dim=2)
    assert float(by_frame.std(dim=0).max()) < 0.5

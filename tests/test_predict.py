"""predict: any rate, channel count, container and length; fold models averaged; the
model's own feature params applied; broken files reported while the others are scored."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_emotion import cli, features, predict
from speech_emotion.checkpoint import load_model
from speech_emotion.folds import Fold
from speech_emotion.inference import predict_proba
from speech_emotion.ravdess import SUBSETS

from random_models import REPO, save_random_cell, small_feature_params

FOLDS = [Fold(1, (1, 11, 20, 21), (2, 3), (4, 5, 6)), Fold(2, (4, 10, 12, 14), (1, 2), (3, 5))]
LABELS = list(SUBSETS["all"])


def speech_like(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """Silence, a burst of harmonic sound with a wobbling pitch, silence: (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 150 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = ((t > 0.2 * seconds) & (t < 0.8 * seconds)).astype(float)
    mono = 0.3 * voiced * envelope + 0.001 * rng.standard_normal(t.size)
    return np.stack([mono * (0.8 + 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_random_cell(tmp_path_factory.mktemp("models") / "cnn-all",
                            small_feature_params(), FOLDS)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Mono 8 kHz WAV, stereo 22.05 kHz FLAC, mono 44.1 kHz OGG, a long stereo 48 kHz WAV."""
    folder = tmp_path_factory.mktemp("audio")
    specs = [("short.wav", 8000, 1, 0.7, {}), ("stereo.flac", 22050, 2, 1.5, {}),
             ("vorbis.ogg", 44100, 1, 1.2, {"format": "OGG", "subtype": "VORBIS"}),
             ("long.wav", 48000, 2, 6.0, {})]
    paths = {}
    for i, (name, rate, channels, seconds, kwargs) in enumerate(specs):
        paths[name] = folder / name
        sf.write(paths[name], speech_like(seconds, rate, channels, seed=i), rate, **kwargs)
    return paths


def run_json(capsys, *args, shifts=("0",)):
    """predict's JSON; `--shifts 0` unless `shifts` says otherwise (None: the default)."""
    code = predict.main([*map(str, args), "--json", *(["--shifts", *shifts] if shifts else [])])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def expected_probabilities(path, model_dir):
    """By hand: the model's own feature code and params, every window, every fold, averaged."""
    probs = []
    for checkpoint_path in sorted(model_dir.glob("fold*.pt")):
        model, checkpoint = load_model(checkpoint_path)
        params = small_feature_params()
        assert checkpoint["feature_params"]["sample_rate"] == params.sample_rate
        wave = features.load_wave(path, params.sample_rate)
        feats = features.Extractor(params)(predict.windows(wave, params))
        probs.append(predict_proba(model, checkpoint, feats))            # (W, C)
    return np.concatenate(probs).mean(axis=0)


def test_scores_every_rate_channel_count_and_container(capsys, model_dir, recordings):
    code, out, err = run_json(capsys, *recordings.values(), "--model", model_dir)
    assert code == 0, err
    assert out["labels"] == LABELS and out["folds"] == [1, 2] and out["errors"] == []
    assert [p["file"] for p in out["predictions"]] == [str(p) for p in recordings.values()]
    for p in out["predictions"]:
        probs = p["probabilities"]
        assert list(probs) == LABELS
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
        assert p["emotion"] == max(probs, key=probs.get)
        want = expected_probabilities(p["file"], model_dir)
        assert list(probs.values()) == pytest.approx(want.tolist(), abs=1e-4)
    by_name = {p["file"].rsplit("/", 1)[-1]: p for p in out["predictions"]}
    assert by_name["short.wav"]["windows"] == 1
    assert by_name["long.wav"]["windows"] > 3          # 6 s of audio, 1 s clips


def test_fold_models_are_averaged_not_just_the_first(capsys, model_dir, recordings):
    _, both, _ = run_json(capsys, recordings["stereo.flac"], "--model", model_dir)
    model, checkpoint = load_model(model_dir / "fold1.pt")
    params = small_feature_params()
    wave = features.load_wave(recordings["stereo.flac"], params.sample_rate)
    first_only = predict_proba(model, checkpoint,
                               features.Extractor(params)(predict.windows(wave, params)))
    got = list(both["predictions"][0]["probabilities"].values())
    assert not np.allclose(got, first_only.mean(axis=0), atol=1e-3)



def test_an_ensemble_checkpoint_averages_its_members(capsys, recordings, tmp_path):
    """train.ensemble > 1: each fold's checkpoint holds several members; predict averages
    every member of every fold, as scoring each member by itself and averaging would."""
    folder = save_random_cell(tmp_path / "cnn-all", small_feature_params(), FOLDS, members=2)
    _, out, _ = run_json(capsys, recordings["stereo.flac"], "--model", folder)
    got = np.array(list(out["predictions"][0]["probabilities"].values()))
    params = small_feature_params()
    wave = features.load_wave(recordings["stereo.flac"], params.sample_rate)
    feats = features.Extractor(params)(predict.windows(wave, params))
    by_member = []
    for path in sorted(folder.glob("fold*.pt")):
        ensemble, checkpoint = load_model(path)
        assert len(ensemble.members) == 2
        for member in ensemble.members:
            by_member.append(predict_proba(member, checkpoint, feats).mean(axis=0))
    assert not np.allclose(by_member[0], by_member[1], atol=1e-3)
    np.testing.assert_allclose(got, np.mean(by_member, axis=0), atol=1e-4)

def test_shifts_average_time_shifted_copies_and_default_to_the_params_file(
        capsys, model_dir, recordings, tmp_path, monkeypatch):
    """--shifts: each window scored as shifted copies, averaged; without it, the
    evaluate.shifts of ./params.yaml (or of --params), so predict scores as the evaluate
    stage did."""
    path = recordings["stereo.flac"]
    _, plain, _ = run_json(capsys, path, "--model", model_dir)
    _, shifted, _ = run_json(capsys, path, "--model", model_dir, shifts=("-3", "0", "4"))
    feature_params = small_feature_params()
    feats = features.Extractor(feature_params)(
        predict.windows(features.load_wave(path, feature_params.sample_rate), feature_params))
    want = np.concatenate([predict_proba(*load_model(p), feats, shifts=[-3, 0, 4])
                           for p in sorted(model_dir.glob("fold*.pt"))]).mean(axis=0)
    got = list(shifted["predictions"][0]["probabilities"].values())
    assert got == pytest.approx(want.tolist(), abs=1e-4)
    assert not np.allclose(got, list(plain["predictions"][0]["probabilities"].values()),
                           atol=1e-3)
    text, count = re.subn(r"(?m)^  shifts: \[[-0-9, ]*\]", "  shifts: [-3, 0, 4]",
                          (REPO / "params.yaml").read_text())
    assert count == 1
    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)                         # ./params.yaml gives the default
    _, by_default, _ = run_json(capsys, path, "--model", model_dir, shifts=None)
    assert list(by_default["predictions"][0]["probabilities"].values()) == got
    frames = features.n_frames(feature_params)          # a shift as long as the clip
    assert predict.main([str(path), "--model", str(model_dir), "--shifts", "0", str(frames)]) == 2
    assert (f"--shifts [0, {frames}]: every shift must be shorter than the clip's {frames} "
            "frames") in capsys.readouterr().err


def test_broken_files_get_one_line_each_and_the_rest_is_scored(capsys, model_dir, recordings,
                                                               tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.ogg"
    code, out, err = run_json(capsys, garbage, recordings["short.wav"], empty, missing,
                              "--model", model_dir)
    assert code == 1
    assert [p["file"] for p in out["predictions"]] == [str(recordings["short.wav"])]
    lines = err.strip().splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, (garbage, empty, missing), strict=True):
        assert line.startswith("error: ") and str(path) in line
    assert [e["file"] for e in out["errors"]] == [str(garbage), str(empty), str(missing)]


def test_table_for_people(capsys, model_dir, recordings):
    code = predict.main([str(recordings["short.wav"]), str(recordings["long.wav"]),
                         "--model", str(model_dir)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["file", "emotion", *LABELS]
    assert len(out) == 3
    row = out[2].split()
    assert row[0] == str(recordings["long.wav"]) and row[1] in LABELS
    assert sum(float(x) for x in row[2:]) == pytest.approx(1.0, abs=0.01)


def test_refuses_a_model_made_with_other_feature_params(capsys, model_dir, recordings, tmp_path):
    # --params: the repository's params.yaml asks for 16 kHz / 64 mel bins; the model has
    # 8 kHz / 16.
    code = predict.main([str(recordings["short.wav"]), "--model", str(model_dir),
                         "--params", str(REPO / "params.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "trained on other feature params than requested" in err
    assert "sample_rate 16000 != 8000" in err and "n_mels 64 != 16" in err
    # Fold models that disagree on their feature params are refused too.
    mixed = tmp_path / "cnn-all"
    save_random_cell(mixed, small_feature_params(), FOLDS[:1])
    save_random_cell(mixed, small_feature_params(n_mels=20), FOLDS[1:])
    with pytest.raises(predict.ModelError, match=r"fold2.pt: feature params differ .*n_mels"):
        predict.load_cell_models(mixed)


def test_missing_model_folder_is_a_clear_error(capsys, recordings, tmp_path):
    code = predict.main([str(recordings["short.wav"]), "--model", str(tmp_path / "nope")])
    assert code == 2
    assert "no such model folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert predict.main([str(recordings["short.wav"]), "--model", str(tmp_path / "empty")]) == 2
    assert "no fold<k>.pt" in capsys.readouterr().err


def test_windows_short_audio_is_the_training_clip_and_long_audio_is_covered():
    params = small_feature_params(clip="trim")
    length = features.n_samples(params)
    rate = params.sample_rate
    short = torch.from_numpy(speech_like(0.8, rate, 1, seed=5)[:, 0])
    assert torch.equal(predict.windows(short, params), features.fix_length(short, params)[None])
    long = torch.from_numpy(speech_like(5.0, rate, 1, seed=6)[:, 0])
    clips = predict.windows(long, params)                          # loud part: 1 s .. 4 s
    start, end = features.nonsilent_span(long, params.trim_db, params.n_fft, params.hop_length)
    assert clips.shape[1] == length
    assert torch.equal(clips[0], long[start:start + length])       # first flush with the start
    assert torch.equal(clips[-1], long[end - length:end])          # last flush with the end
    assert clips.shape[0] == len(range(0, end - start - length + 1, length // 2)) + (
        (end - start - length) % (length // 2) != 0)
    offset = small_feature_params(clip="offset", offset_s=0.5)
    # 4.5 s after the offset: windows at 0, 1, 2, 3 s and one flush with the end at 3.5 s
    assert predict.windows(long, offset, hop=rate).shape[0] == 5


def test_console_script_and_module_entry_points(capsys, model_dir, recordings):
    assert cli.main(["predict", str(recordings["short.wav"]), "--model", str(model_dir),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["emotion"] in LABELS
    assert cli.main([]) == 2
    done = subprocess.run([sys.executable, "-m", "speech_emotion.predict",
                           str(recordings["short.wav"]), "--model", str(model_dir), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"][0]["windows"] == 1


# ---------------------------------------------------------------- bad input
def test_a_missing_file_is_said_to_be_missing(capsys, model_dir, recordings, tmp_path):
    missing = tmp_path / "nope.wav"
    code, out, err = run_json(capsys, missing, recordings["short.wav"], "--model", model_dir)
    assert code == 1
    assert err.strip() == f"error: {missing}: no such file"
    assert [p["file"] for p in out["predictions"]] == [str(recordings["short.wav"])]


def test_a_directory_scores_the_audio_files_inside(capsys, model_dir, recordings, tmp_path):
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    for name in ("short.wav", "stereo.flac"):
        (folder / name).write_bytes(recordings[name].read_bytes())
    (folder / "sub" / "vorbis.ogg").write_bytes(recordings["vorbis.ogg"].read_bytes())
    (folder / "notes.txt").write_text("not audio")
    code, out, err = run_json(capsys, folder, "--model", model_dir)
    assert code == 0, err
    assert [p["file"] for p in out["predictions"]] == [
        str(folder / "short.wav"), str(folder / "stereo.flac"), str(folder / "sub" / "vorbis.ogg")]
    (tmp_path / "empty").mkdir()
    code, out, err = run_json(capsys, tmp_path / "empty", "--model", model_dir)
    assert code == 1
    assert err.strip() == (f"error: {tmp_path / 'empty'}: a directory with no audio files "
                           "(.flac, .ogg, .wav)")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_checkpoint_names_the_file_and_the_cause(capsys, recordings, tmp_path, keep):
    folder = save_random_cell(tmp_path / "cnn-all", small_feature_params(), FOLDS[:1])
    data = (folder / "fold1.pt").read_bytes()
    (folder / "fold1.pt").write_bytes(data[:int(len(data) * keep)])
    code = predict.main([str(recordings["short.wav"]), "--model", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {folder / 'fold1.pt'}: not a loadable checkpoint: truncated "
                          "or corrupt"), err
    assert "Errno" not in err and len(err.strip().splitlines()) == 1


def _edit_checkpoint(folder, change):
    path = folder / "fold1.pt"
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("change, field", [
    (lambda c: c["normalisation"].pop("mean"), "normalisation.mean"),
    (lambda c: c["normalisation"].update(std=torch.ones(3)), "normalisation.std"),
    (lambda c: c["feature_params"].update(n_mels=20), "feature_params.n_mels"),
    (lambda c: c["feature_params"].pop("hop_length"), "feature_params.hop_length"),
    (lambda c: c["feature_params"].update(win_length=4096), "feature_params.win_length"),
    (lambda c: c["config"].update(kernel_size=4), "config.kernel_size"),
    (lambda c: c.update(model="resnet"), "model"),
    (lambda c: c.update(labels="angry"), "labels"),
    (lambda c: c.update(normalisation=None), "normalisation"),
], ids=["no-mean", "std-length", "n_mels-vs-weights", "no-hop", "bad-feature-param",
        "bad-config", "unknown-model", "labels-not-a-list", "normalisation-not-a-dict"])
def test_a_checkpoint_with_missing_or_inconsistent_fields_names_file_and_field(
        capsys, recordings, tmp_path, change, field):
    folder = save_random_cell(tmp_path / "cnn-all", small_feature_params(), FOLDS[:1])
    path = _edit_checkpoint(folder, change)
    code = predict.main([str(recordings["short.wav"]), "--model", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {path}: ") and field in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_no_speech_and_too_short_audio_are_scored_with_a_warning(capsys, model_dir, recordings,
                                                                tmp_path):
    rate = 8000
    silence, dc, one, loud = (tmp_path / f"{n}.wav" for n in ("silence", "dc", "one", "loud"))
    sf.write(silence, np.zeros(rate, np.float32), rate, subtype="FLOAT")
    sf.write(dc, np.full(rate, 0.5, np.float32), rate, subtype="FLOAT")
    sf.write(one, np.array([0.3], np.float32), rate, subtype="FLOAT")
    sf.write(loud, speech_like(1.0, rate, 1, seed=3)[:, 0] * 8, rate, subtype="FLOAT")
    good = recordings["short.wav"]
    code, out, err = run_json(capsys, silence, dc, one, loud, good, "--model", model_dir)
    assert code == 0, err                                  # warnings keep the exit code
    by_file = {p["file"]: p for p in out["predictions"]}
    assert list(by_file) == [str(p) for p in (silence, dc, one, loud, good)]
    assert "no speech" in by_file[str(silence)]["warnings"][0]
    assert "no speech" in by_file[str(dc)]["warnings"][0]
    assert "too short" in by_file[str(one)]["warnings"][0]
    assert "outside [-1, 1]" in by_file[str(loud)]["warnings"][0]
    assert by_file[str(good)]["warnings"] == []
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("warning: ") for line in lines)
    for line, path in zip(lines, (silence, dc, one, loud), strict=True):
        assert str(path) in line


def test_the_hop_and_the_window_count_are_bounded(capsys, model_dir, recordings, tmp_path):
    params = small_feature_params()
    clip_s = features.n_samples(params) / params.sample_rate
    path = recordings["long.wav"]
    for hop in ("0", "-1", "1e-6", str(2 * clip_s), "nan"):
        assert predict.main([str(path), "--model", str(model_dir), "--hop-s", hop]) == 2, hop
        err = capsys.readouterr().err
        assert err.startswith("error: --hop-s ") and "must be" in err, err
    long = torch.from_numpy(speech_like(120.0, params.sample_rate, 1, seed=7)[:, 0])
    long[:] = torch.sin(torch.arange(long.shape[0]) * 0.3) * 0.5      # loud throughout
    hop = params.hop_length                                             # the smallest hop
    clips = predict.windows(long, params, hop)
    assert clips.shape[0] == predict.MAX_WINDOWS                        # not ~12 000
    assert torch.equal(clips[-1], long[-clips.shape[1]:])               # still flush with the end


def test_a_level_centred_model_hears_a_quieter_file_as_the_same(capsys, model_dir, recordings,
                                                                tmp_path):
    """train.utterance_norm: level travels in the checkpoint and predict applies it as
    evaluate does: the same file 12 dB quieter gets the same probabilities, where the same
    weights without the centring score it differently."""
    wave, rate = sf.read(recordings["stereo.flac"])
    quiet = tmp_path / "quiet.flac"
    sf.write(quiet, wave * 10 ** (-12 / 20), rate)
    centred = tmp_path / "cnn-all"
    centred.mkdir()
    for path in sorted(model_dir.glob("fold*.pt")):
        saved = torch.load(path, weights_only=False)
        torch.save({**saved, "normalisation": {**saved["normalisation"], "utterance": "level",
                                               "mean": saved["normalisation"]["mean"] * 0}},
                   centred / path.name)
    probabilities = {}
    for name, folder in (("plain", model_dir), ("level", centred)):
        _, out, _ = run_json(capsys, recordings["stereo.flac"], quiet, "--model", folder)
        probabilities[name] = [list(p["probabilities"].values()) for p in out["predictions"]]
    assert probabilities["level"][1] == pytest.approx(probabilities["level"][0], abs=1e-4)
    plain = np.abs(np.subtract(*probabilities["plain"])).max()
    assert plain > 1e-3                      # 10x the tolerance the centred model meets

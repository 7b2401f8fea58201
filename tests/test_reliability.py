"""Reliability, the fast part: the bad-input, fault and security cases that the other test
files do not already cover. docs/RELIABILITY.md maps every case to the test that proves
it; the slow, whole-pipeline cases are in test_reproduction.py.

Bad input gives a clear error naming the file and the problem, and no partial output;
odd but valid input (rates, bit depths, channels, an absent actor) works and says so.
A full disk gives an error naming the output, and the previous output is untouched.
Nothing untrusted is unpickled or evaluated.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import runpy
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from speech_emotion import atomic, audio, checkpoint, features, labels, params, predict, store
from speech_emotion.folds import Fold, make_folds

from random_models import save_random_cell, small_feature_params

REPO = Path(__file__).resolve().parents[1]
# Two utterances of actor 01 and one of actor 02 from the session's synthetic corpus.
SOURCES = ("Actor_01/03-01-03-01-02-02-01.wav", "Actor_01/03-01-05-02-01-01-01.wav",
           "Actor_02/03-01-05-02-01-01-02.wav")
BAD_NAME = "Actor_02/03-01-06-01-01-01-02"          # where a broken file goes (suffix added)


def copy_raw(corpus: Path, root: Path, names=SOURCES) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / name, root / name)
    return root


def chunk(data: bytes, name: bytes) -> int:
    """Byte offset of the WAV chunk `name` (its 4-byte id)."""
    return data.index(name, 12)


# ---------------------------------------------------------------- broken files
def truncated_flac(good: Path, dest: Path) -> None:
    wave, rate = sf.read(str(good), dtype="int16")
    sf.write(str(dest), wave, rate, subtype="PCM_16", format="FLAC")
    data = dest.read_bytes()
    dest.write_bytes(data[: len(data) // 2])               # STREAMINFO still says the full length


def zero_bytes(good: Path, dest: Path) -> None:
    dest.write_bytes(b"")


def header_claims_more(good: Path, dest: Path) -> None:
    """A complete file whose data chunk says twice the bytes it holds."""
    data = bytearray(good.read_bytes())
    at = chunk(data, b"data")
    size = struct.unpack("<I", data[at + 4:at + 8])[0]
    data[at + 4:at + 8] = struct.pack("<I", size * 2)
    dest.write_bytes(bytes(data))


def header_claims_less(good: Path, dest: Path) -> None:
    """A complete file whose data chunk says half the bytes it holds: read as it claims,
    half the audio would silently be lost."""
    data = bytearray(good.read_bytes())
    at = chunk(data, b"data")
    size = struct.unpack("<I", data[at + 4:at + 8])[0]
    data[at + 4:at + 8] = struct.pack("<I", size // 2)
    dest.write_bytes(bytes(data))


def corrupt_wav(good: Path, dest: Path) -> None:
    data = bytearray(good.read_bytes())
    data[20:36] = b"\xff" * 16                              # the fmt chunk: format, rate, ...
    dest.write_bytes(bytes(data))


BROKEN = {  # kind: (make, suffix, the problem the error must state)
    "corrupt WAV": (corrupt_wav, ".wav", "unreadable audio"),
    "truncated FLAC": (truncated_flac, ".flac", "unreadable audio"),
    "zero-length file": (zero_bytes, ".wav", "empty file (0 bytes)"),
    "header claims more data": (header_claims_more, ".wav", "truncated audio"),
    "header claims less data": (header_claims_less, ".wav", "malformed WAV header"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_file_is_named_by_labels_and_features(kind, synthetic_corpus, tmp_path):
    make, suffix, problem = BROKEN[kind]
    raw = copy_raw(synthetic_corpus, tmp_path / "raw")
    bad = raw / f"{BAD_NAME}{suffix}"
    make(raw / SOURCES[2], bad)
    rel = bad.relative_to(raw).as_posix()

    with pytest.raises(labels.LabelsError) as err:             # the labels stage's check
        labels.build_table(raw)
    assert err.value.problems == [f"{rel}: {problem}" + err.value.problems[0].split(problem, 1)[1]]
    assert err.value.problems[0].startswith(f"{rel}: {problem}")

    good = [raw / name for name in SOURCES]                    # the features stage's check
    with pytest.raises(audio.AudioError, match=re.escape(f"{bad}: {problem}")):
        features.extract_files(good[:2] + [bad] + good[2:], small_feature_params(),
                               progress=False, workers=0)


@pytest.mark.parametrize("kind", ["truncated FLAC", "header claims less data"])
def test_labels_stage_stops_without_writing_data_csv(kind, synthetic_corpus, tmp_path,
                                                     monkeypatch, capsys):
    make, suffix, problem = BROKEN[kind]
    raw = copy_raw(synthetic_corpus, tmp_path / "data" / "raw" / "ravdess")
    make(raw / SOURCES[2], raw / f"{BAD_NAME}{suffix}")
    shutil.copyfile(REPO / "params.yaml", tmp_path / "params.yaml")  # every stage checks it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "stages" / "labels.py"), run_name="__main__")
    assert f"{BAD_NAME}{suffix}: {problem}" in str(exit_.value.code)
    assert not (tmp_path / "data" / "interim").exists()


def test_a_wrong_riff_size_alone_is_harmless(synthetic_corpus, tmp_path):
    """The RIFF size is wrong, the data chunk is right: every sample is read."""
    good = synthetic_corpus / SOURCES[0]
    data = bytearray(good.read_bytes())
    data[4:8] = struct.pack("<I", len(data) * 3)
    (tmp_path / "riff.wav").write_bytes(bytes(data))
    assert np.array_equal(audio.read(tmp_path / "riff.wav")[0], audio.read(good)[0])


# ---------------------------------------------------------------- odd but valid files
ODD = {  # stem of actor 01 -> (sample rate, subtype, channels, container)
    "03-01-02-01-01-01-01": (8000, "PCM_16", 1, "WAV"),
    "03-01-02-01-01-02-01": (22050, "PCM_16", 1, "WAV"),
    "03-01-02-01-02-01-01": (48000, "PCM_24", 1, "WAV"),
    "03-01-02-01-02-02-01": (48000, "FLOAT", 1, "WAV"),
    "03-01-03-01-01-01-01": (44100, "PCM_24", 2, "FLAC"),
    "03-01-03-01-01-02-01": (48000, "PCM_16", 2, "WAV"),
}


def test_any_rate_depth_and_channel_count_goes_through_labels_and_features(synthetic_corpus,
                                                                            tmp_path):
    """8 and 22.05 kHz are resampled, 24-bit and float are read, stereo is mixed down;
    the 24-bit and float copies of 16-bit audio give the same features as the original."""
    from scipy.signal import resample_poly

    raw = tmp_path / "raw" / "Actor_01"
    raw.mkdir(parents=True)
    original, rate = audio.read(synthetic_corpus / "Actor_01/03-01-02-01-01-01-01.wav")
    mono = original[0]                                                     # 48 kHz
    for stem, (new_rate, subtype, channels, container) in ODD.items():
        wave = resample_poly(mono, new_rate, rate) if new_rate != rate else mono
        wave = np.stack([wave] * channels, axis=1)
        sf.write(str(raw / f"{stem}.{container.lower()}"), wave, new_rate, subtype=subtype,
                 format=container)
    table = labels.build_table(tmp_path / "raw")
    facts = table.set_index("stem")[["sample_rate", "subtype", "channels"]]
    for stem, (new_rate, subtype, channels, _) in ODD.items():
        assert tuple(facts.loc[stem]) == (new_rate, subtype, channels)

    p = params.load(REPO / "params.yaml").features
    matrix = features.extract_files([tmp_path / "raw" / path for path in table["path"]], p,
                                    progress=False, workers=0)
    assert matrix.shape == (len(ODD), features.n_bins(p), features.n_frames(p))
    assert np.isfinite(matrix).all()
    by_stem = dict(zip(table["stem"], matrix, strict=True))
    reference = features.extract_files([synthetic_corpus / "Actor_01/03-01-02-01-01-01-01.wav"],
                                       p, progress=False, workers=0)[0]
    for stem in ("03-01-02-01-02-01-01", "03-01-02-01-02-02-01", "03-01-03-01-01-02-01"):
        np.testing.assert_allclose(by_stem[stem], reference, atol=1e-3)   # same samples
    for stem in ("03-01-02-01-01-01-01", "03-01-02-01-01-02-01", "03-01-03-01-01-01-01"):
        # resampled: the same speech; 8 kHz has nothing above 4 kHz, so compare below it
        low = slice(0, 40)                                              # mel bins < ~3 kHz
        corr = np.corrcoef(by_stem[stem][low].ravel(), reference[low].ravel())[0, 1]
        assert corr > 0.9, (stem, corr)



@pytest.mark.parametrize("subtype, container", [("PCM_16", "WAV"), ("PCM_16", "FLAC"),
                                                ("PCM_24", "WAV"), ("PCM_24", "FLAC"),
                                                ("FLOAT", "WAV")])
def test_audio_read_gives_libsndfiles_own_floats(subtype, container, tmp_path):
    """Whatever the depth and container, audio.read gives libsndfile's float32 conversion
    bit for bit, extremes included, and does not cut deeper files to 16 bits (a guard for
    faster decoding paths: int16 reads scaled in numpy were tried, and were no faster)."""
    rng = np.random.default_rng(0)
    ints = np.concatenate([[-32768, 32767, 0, -1, 1], rng.integers(-32768, 32768, 4000)])
    wave = np.stack([ints, ints[::-1]], axis=1).astype(np.float64) / 32768  # stereo
    if subtype != "PCM_16":
        wave = wave + rng.uniform(-1, 1, wave.shape) * 2.0 ** -20            # below 16 bits
        wave = np.clip(wave, -1, 1 - 2.0 ** -23)
    path = tmp_path / f"x.{container.lower()}"
    sf.write(str(path), wave, 16000, subtype=subtype, format=container)
    data, rate = audio.read(path)
    expected = sf.read(str(path), dtype="float32", always_2d=True)[0].T
    assert rate == 16000 and data.dtype == np.float32 and data.flags.c_contiguous
    assert np.array_equal(data, expected)
    if subtype != "PCM_16":            # not cut to 16 bits on the way
        assert not np.array_equal(data, np.round(data * 32768) / 32768)

# ---------------------------------------------------------------- an absent actor
def test_an_absent_actor_runs_and_is_named(synthetic_corpus, synthetic_table, tmp_path,
                                           monkeypatch, capsys):
    """Actor 03 of the six synthetic actors is absent: data.csv is written for the rest,
    the labels stage says which actors are absent, a fold that tests on actor 03 is
    skipped with a message and the others run."""
    raw = tmp_path / "data" / "raw" / "ravdess"
    kept = synthetic_table[synthetic_table["actor"] != 3]
    kept = kept[kept["actor"] <= 5]                               # actors 01, 02, 04, 05
    for name in kept["path"]:
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(synthetic_corpus / name, raw / name)
    shutil.copyfile(REPO / "params.yaml", tmp_path / "params.yaml")  # every stage checks it
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(REPO / "stages" / "labels.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "labels: not the full corpus: 20 of 24 actors absent: 03, 06-24" in out
    table = labels.read_table(tmp_path / "data" / "interim" / "data.csv")
    assert sorted(set(table["actor"])) == [1, 2, 4, 5] and len(table) == 240
    messages = []
    folds = make_folds(table["actor"], "loso", [1, 3, 4], 2, 0,
                       log=lambda *a, **k: messages.append(" ".join(map(str, a))))
    assert [f.number for f in folds] == [1, 4]
    assert messages == ["fold 3: none of its test actors [3] is in the data; skipped"]


def test_coverage_names_an_incomplete_actor(synthetic_table):
    table = synthetic_table[~synthetic_table["stem"].isin(
        ["03-01-08-02-02-02-05", "03-01-01-01-01-01-05"])]
    notes = labels.coverage(table)
    assert notes[0] == "18 of 24 actors absent: 07-24"
    assert notes[1:] == ["Actor_05: 58 of 60 utterances "
                         "(missing 03-01-01-01-01-01-05, 03-01-08-02-02-02-05)"]


# ---------------------------------------------------------------- params.yaml
@pytest.mark.parametrize("key, value, message", [
    ("features.n_mels", "64", "'features.n_mels' must be int, got '64'"),
    ("features.n_mel", 64, "unknown key(s) features.n_mel"),
    ("train.epochs", 1.5, "'train.epochs' must be int, got 1.5"),
    ("train.epochs", 0, "train.epochs = 0, must be >= 1"),
])
def test_a_bad_params_yaml_stops_the_stage_naming_the_key(key, value, message, tmp_path,
                                                          monkeypatch, capsys):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    section, name = key.split(".")
    raw[section][name] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["stages/features.py"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "stages" / "features.py"), run_name="__main__")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err == f"features: params.yaml: {message}\n" or (message in err and "\n" not in
                                                               err.rstrip("\n")), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


STAGE_COMMANDS = [["download"], ["labels"], ["split"], ["features"], ["describe"],
                  ["train", "cnn", "all"], ["evaluate", "cnn", "all"],
                  ["represent", "logmel_stats", "all"], ["probe", "logmel_stats", "all"],
                  ["report"]]


@pytest.mark.slow
@pytest.mark.parametrize("bad", [{"split.folds": [7]}, {"train.batch_size": 0}],
                         ids=["folds-outside-protocol", "batch-size-0"])
def test_every_stage_refuses_bad_params_before_any_work_in_one_line(tmp_path, bad):
    """Whichever stage DVC runs first refuses a value known to be wrong when
    params.yaml is read: one line on stderr, exit 1, no traceback, nothing written."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in bad.items():
        section, name = dotted.split(".")
        raw[section][name] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    key, value = next(iter(bad.items()))
    for stage, *args in STAGE_COMMANDS:
        done = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py"), *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 1, (stage, done.stderr)
        assert done.stderr.startswith(f"{stage}: params.yaml: {key} = {value}, must be"), \
            (stage, done.stderr)
        assert len(done.stderr.splitlines()) == 1, (stage, done.stderr)   # no traceback, no
        assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"], stage  # noise


def test_a_user_error_in_a_stage_is_one_line_and_a_bug_keeps_its_traceback(capsys):
    from speech_emotion import stage
    from speech_emotion.folds import FoldError

    def user_mistake():
        raise FoldError("none of the folds [3] has a test actor in the data")

    with pytest.raises(SystemExit) as exit_:
        stage.run(user_mistake, "train")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == ("train: none of the folds [3] has a test actor in the "
                                       "data\n")

    def bug():
        raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        stage.run(bug, "train")


# ---------------------------------------------------------------- a full disk
def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name)


def test_disk_full_while_saving_a_checkpoint(tmp_path, monkeypatch):
    folder = save_random_cell(tmp_path / "cnn-all", small_feature_params(),
                              [Fold(1, (1,), (2, 3), (4,))])
    path = checkpoint.path_for(folder, 1)
    before = path.read_bytes()
    saved = checkpoint.load(path)

    def half_then_full(self, data):                      # half the bytes land, then ENOSPC
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        no_space()

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(OSError) as err:
        checkpoint.save(path, saved)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert str(path) in str(err.value) and "No space left on device" in str(err.value)
    monkeypatch.undo()
    assert path.read_bytes() == before                      # the old checkpoint, whole
    assert leftovers(tmp_path) == []


def test_disk_full_while_writing_a_model_folder_keeps_the_old_one(tmp_path):
    folder = tmp_path / "models" / "cnn-all"
    folder.mkdir(parents=True)
    (folder / "fold1.pt").write_bytes(b"old weights")
    full = re.escape(f"No space left on device; not written: '{folder}'")
    with pytest.raises(OSError, match=full):
        with atomic.atomic_dir(folder) as tmp:
            (tmp / "fold1.pt").write_bytes(b"new weigh")
            no_space()
    assert [p.name for p in folder.iterdir()] == ["fold1.pt"]
    assert (folder / "fold1.pt").read_bytes() == b"old weights"
    assert leftovers(tmp_path) == []


def test_disk_full_while_writing_features_keeps_the_old_store(tmp_path, monkeypatch,
                                                              synthetic_table, synthetic_corpus):
    """The features stage: HDF5 reports ENOSPC after the big matrix is written; the stage
    fails naming data/processed/features.h5 and the store of the previous run is intact."""
    table = synthetic_table.iloc[:4]
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    copy_raw(synthetic_corpus, tmp_path / "data" / "raw" / "ravdess", table["path"])
    atomic.write_csv(tmp_path / "data" / "interim" / "data.csv", table)
    monkeypatch.chdir(tmp_path)
    stage = str(REPO / "stages" / "features.py")
    runpy.run_path(stage, run_name="__main__")
    out = tmp_path / "data" / "processed" / "features.h5"
    before = out.read_bytes()

    real = h5py.Group.create_dataset

    def full_after_the_matrix(self, name, *args, **kwargs):
        if name == store.INDEX:
            no_space()
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", full_after_the_matrix)
    with pytest.raises(OSError) as err:
        runpy.run_path(stage, run_name="__main__")
    assert err.value.errno == errno.ENOSPC
    assert "not written: 'data/processed/features.h5'" in str(err.value)
    assert out.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_leftovers_of_a_killed_writer_are_removed_by_the_next(tmp_path):
    """SIGKILL leaves `.<name>.tmp-<pid>` behind; the next write of that output removes it,
    but never the temporary file of a process that is still running."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    alive = str(os.getppid())
    out = tmp_path / "metrics.json"
    for pid in (dead, alive):
        (tmp_path / f".metrics.json.tmp-{pid}").write_text("half")
    (tmp_path / f".metrics.json.old-{dead}").mkdir()
    atomic.write_json(out, {"ua": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".metrics.json.tmp-{alive}",
                                                          "metrics.json"]


# ---------------------------------------------------------------- security
class Payload:
    """Unpickling this runs code: it writes a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_a_malicious_checkpoint_is_refused_without_running_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    good = save_random_cell(tmp_path / "good", small_feature_params(),
                            [Fold(1, (1,), (2, 3), (4,))])
    bad_dir = tmp_path / "cnn-all"
    bad_dir.mkdir()
    saved = torch.load(good / "fold1.pt", weights_only=True)
    saved["labels"] = Payload(marker)
    torch.save(saved, bad_dir / "fold1.pt")
    with pytest.raises(checkpoint.CheckpointError, match="fold1.pt: not a loadable checkpoint"):
        checkpoint.load(bad_dir / "fold1.pt")
    audio_file = tmp_path / "x.wav"
    sf.write(str(audio_file), np.zeros(8000, dtype=np.float32) + 0.01, 8000)
    assert predict.main([str(audio_file), "--model", str(bad_dir)]) == 2
    assert "not a loadable checkpoint" in capsys.readouterr().err
    assert not marker.exists()
    # the pickle does run code when loaded the unsafe way, so the test means something
    torch.load(bad_dir / "fold1.pt", weights_only=False)
    assert marker.read_text() == "code ran"


UNSAFE = {  # pattern -> why it is unsafe on untrusted input
    r"\bpickle\.loads?\(": "unpickles",
    r"\bjoblib\.load\(|\bdill\.|\bcloudpickle\.|\bshelve\.|\bmarshal\.loads?\(": "unpickles",
    r"\bread_pickle\(": "unpickles",
    r"allow_pickle\s*=\s*True": "unpickles",
    r"(?<![\w.])(eval|exec)\(": "evaluates code",
    r"\byaml\.(load|unsafe_load|full_load)\(": "constructs Python objects",
    r"yaml\.(Unsafe)?Loader\b": "constructs Python objects",
    r"shell\s*=\s*True": "runs a shell",
}


def test_no_untrusted_data_is_unpickled_or_evaluated():
    sources = sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "stages").glob("*.py"))
    assert len(sources) > 20
    found = []
    for path in sources:
        text = path.read_text()
        for pattern, why in UNSAFE.items():
            found += [f"{path.relative_to(REPO)}: {m.group(0)} ({why})"
                      for m in re.finditer(pattern, text)]
        for call in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", text):
            if "weights_only=True" not in call.group(0):
                found.append(f"{path.relative_to(REPO)}: {call.group(0)} without weights_only=True")
    assert found == []


# ---------------------------------------------------------------- bad input, round three
def one_fold_cell(folder: Path) -> Path:
    return save_random_cell(folder, small_feature_params(), [Fold(1, (1,), (2, 3), (4,))])


def refuse_decoding(monkeypatch):
    """Make any decoding of samples fail the test: a refusal must come from the header."""
    def decoded(*args, **kwargs):
        raise AssertionError("samples were decoded")
    monkeypatch.setattr(sf.SoundFile, "read", decoded)


@pytest.mark.parametrize("rate", [1, 999, 800_000])
def test_an_absurd_sample_rate_is_refused_from_the_header(rate, tmp_path, monkeypatch):
    from speech_emotion import encoded

    path = tmp_path / "odd.wav"              # 20,000 frames: 40 KB, 5.6 hours at 1 Hz
    sf.write(path, np.zeros(20_000, np.int16), rate, subtype="PCM_16")
    refuse_decoding(monkeypatch)
    message = f"{path}: sample rate {rate} Hz is outside 1000-768000 Hz"
    # every reader: labels and external (info), features, predict and encode (read)
    for read in (audio.info, audio.read, lambda p: features.load_wave(p, 16000),
                 lambda p: encoded.encode_file(p, None, keep_frames=False)):
        with pytest.raises(audio.AudioError, match=re.escape(message)):
            read(path)


@pytest.mark.parametrize("rate", [1000, 768_000])
def test_the_bounds_of_the_sample_rate_are_read(rate, tmp_path):
    path = tmp_path / "edge.wav"
    sf.write(path, np.full(4000, 0.25, np.float32), rate)
    wave, got = audio.read(path)
    assert got == rate and wave.shape == (1, 4000)
    assert features.load_wave(path, 16000).shape[0] == -(-4000 * 16000 // rate)


def test_predict_refuses_an_absurd_rate_in_one_line_and_scores_the_rest(tmp_path, capsys):
    odd, good = tmp_path / "odd.wav", tmp_path / "good.wav"
    sf.write(odd, np.zeros(20_000, np.int16), 1, subtype="PCM_16")
    sf.write(good, 0.1 * np.sin(np.arange(8000) / 5.0), 8000)
    code = predict.main([str(odd), str(good), "--model", str(one_fold_cell(tmp_path / "m")),
                         "--shifts", "0"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [f"error: {odd}: sample rate 1 Hz is outside 1000-768000 Hz "
                                "(a wrong header?)"]
    assert str(good) in out


def test_memory_is_bounded_whatever_the_length(tmp_path, monkeypatch):
    """Longer than MAX_SECONDS, or more samples than MAX_SAMPLES: refused before decoding."""
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros((3 * 8000, 2), np.int16), 8000, subtype="PCM_16")   # 3 s stereo
    refuse_decoding(monkeypatch)
    monkeypatch.setattr(audio, "MAX_SECONDS", 2, raising=False)
    for read in (audio.info, audio.read):
        with pytest.raises(audio.AudioError, match=re.escape(f"{path}: too long: the header "
                                                             "says 24000 frames x 2 channel(s)")):
            read(path)
    monkeypatch.setattr(audio, "MAX_SECONDS", 3600)
    monkeypatch.setattr(audio, "MAX_SAMPLES", 40_000, raising=False)   # 3 s mono would pass
    with pytest.raises(audio.AudioError, match="too long"):
        audio.read(path)


def test_an_empty_path_is_an_error_not_the_current_folder(tmp_path, monkeypatch, capsys):
    model = one_fold_cell(tmp_path / "m")
    here = tmp_path / "here"
    here.mkdir()
    sf.write(here / "a.wav", 0.1 * np.sin(np.arange(8000) / 5.0), 8000)
    monkeypatch.chdir(here)
    assert predict.main(["", "--model", str(model), "--json", "--shifts", "0"]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["predictions"] == []
    assert out["errors"] == [{"file": ".", "error": "'': an empty path (an unset variable?); "
                                                    "name a file or a directory"}]
    assert captured.err.startswith("error: '': an empty path")


class CountingEncoder:
    """A stand-in for whisper.Encoder: (S,) -> (L, T', D), remembering each input's length."""

    def __init__(self):
        self.lengths = []

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        from speech_emotion.encoders.whisper import encoder_frames

        self.lengths.append(int(wave.shape[0]))
        frames = encoder_frames(wave.shape[0]) + 1
        return wave.abs().mean() * torch.ones(2, frames, 3)


def test_a_head_scores_long_audio_in_windows_of_its_training_length(tmp_path):
    from speech_emotion.encoders.whisper import SAMPLE_RATE

    cell = predict.CellModels(tmp_path, [], [], ["a", "b"], None, {})    # a head's cell
    for seconds in (5.0, 20.0, 60.0):
        path = tmp_path / f"{seconds:g}s.wav"
        sf.write(path, 0.1 * np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 5.0), SAMPLE_RATE)
        encoder = CountingEncoder()
        item = predict.file_inputs(path, cell, encoder)
        assert item.features.shape == (len(encoder.lengths), 6, 2)      # (W, 2D, L)
        if seconds <= 5.3:      # as long as RAVDESS's longest: whole, as the encode stage did
            assert encoder.lengths == [int(seconds * SAMPLE_RATE)]
        else:                   # windows of about a training utterance, half one apart
            assert max(encoder.lengths) <= 6 * SAMPLE_RATE
            window = round(predict.HEAD_WINDOW_S * SAMPLE_RATE)
            assert set(encoder.lengths) == {window}
            assert len(encoder.lengths) == math.ceil((seconds * SAMPLE_RATE - window)
                                                     / (window // 2)) + 1


def test_encode_names_a_file_longer_than_whispers_window(tmp_path):
    from test_whisper_head import tiny_whisper, write_model_bin

    from speech_emotion import encoded
    from speech_emotion.encoders import whisper

    write_model_bin(tmp_path / "model.bin", tiny_whisper(layers=1, positions=1500))
    encoder = whisper.Encoder(tmp_path)
    fits, long = tmp_path / "fits.wav", tmp_path / "long.wav"
    sf.write(fits, 0.1 * np.sin(np.arange(29 * 16000) / 5.0), 16000)
    sf.write(long, 0.1 * np.sin(np.arange(35 * 16000) / 5.0), 16000)
    assert encoded.encode_file(fits, encoder, keep_frames=False).pooled.shape == (2, 2, 8)
    with pytest.raises(audio.AudioError, match=re.escape(
            f"{long}: 35.0 s long; the encoder takes an utterance of at most 30 s")):
        encoded.encode_file(long, encoder, keep_frames=False)

"""external: the presets read real-looking names and refuse others; only the classes a
cell and a corpus share are scored; a tiny CREMA-D-style corpus (other sample rates, AIFF
under a .wav name, a 1.2 s clip) goes through the stage end to end; no corpora, no work."""

from __future__ import annotations

import json
import re
import runpy
import tarfile
import typing
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from speech_emotion import external, features, metrics, params, predict, report
from speech_emotion.external import CorpusError, Recording
from speech_emotion.folds import Fold
from speech_emotion.params import CorpusParams
from speech_emotion.ravdess import EMOTION_NAMES, EMOTIONS, SUBSETS, Utterance
from speech_emotion.sources import synthetic

from random_models import REPO, save_random_cell, small_feature_params

FOLDS = [Fold(1, (1, 11, 20, 21), (2, 3), (4, 5, 6)), Fold(2, (4, 10, 12, 14), (1, 2), (3, 5))]
NAME_CODES = {v: k for k, v in EMOTIONS.items()}


# ---------------------------------------------------------------- presets
REAL_LOOKING = {
    "tess": [("TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav",
              "OAF", "angry"),
             ("YAF_pleasant_surprised/YAF_youth_ps.wav", "YAF", "surprised"),
             ("OAF_Fear/OAF_bite_fear.wav", "OAF", "fearful"),
             ("YAF_disgust/YAF_germ_disgust.WAV", "YAF", "disgust"),
             ("OAF_neutral/OAF_chair_neutral.wav", "OAF", "neutral")],
    "savee": [("ALL/DC_a01.wav", "DC", "angry"), ("JE_sa15.wav", "JE", "sad"),
              ("AudioData/KL/su03.wav", "KL", "surprised"),
              ("AudioData/JK/n30.wav", "JK", "neutral"),
              ("AudioData/DC/f12.wav", "DC", "fearful"), ("JE_h07.wav", "JE", "happy"),
              ("KL_d02.wav", "KL", "disgust")],
    "crema_d": [("AudioWAV/1001_DFA_ANG_XX.wav", "1001", "angry"),
                ("1091_TSI_NEU_XX.wav", "1091", "neutral"),
                ("1012_IEO_HAP_HI.wav", "1012", "happy"),
                ("1040_IWL_FEA_LO.wav", "1040", "fearful"), ("1076_MTI_SAD_MD.wav", "1076", "sad"),
                ("1002_ITS_DIS_XX.wav", "1002", "disgust")],
}
BAD = {
    "tess": ["OAF_back_calm.wav", "OA_bite_neutral.wav", "XAF_back_angry.wav",
             "OAF_back_angry.flac", "OAF_angry.wav", "OAF_back_pleasant.wav"],
    "savee": ["XX_a01.wav", "DC_x01.wav", "AudioData/DC/a1.wav", "DC_a001.wav", "DC-a01.wav",
              "AudioData/JE/sa.wav"],
    "crema_d": ["1001_DFA_CAL_XX.wav", "101_DFA_ANG_XX.wav", "1001_DFA_ANG_XX.mp3",
                "1001_DFA_ANG.wav", "1001_DF_ANG_XX.wav", "1001_DFA_ANG_VHI.wav"],
}


@pytest.mark.parametrize("preset", sorted(REAL_LOOKING))
def test_each_preset_reads_real_looking_names(preset):
    names = [name for name, _, _ in REAL_LOOKING[preset]]
    got = external.parse_names(names + ["README.txt", ".DS_Store", "__MACOSX/._x.wav",
                                        "docs/finishedEmoResponses.csv"], preset, "x")
    assert {(r.path, r.speaker, r.emotion) for r in got} == set(REAL_LOOKING[preset])
    assert all(r.emotion in EMOTION_NAMES for r in got)


@pytest.mark.parametrize("preset", sorted(BAD))
def test_each_preset_refuses_other_names_and_lists_the_first(preset):
    for name in BAD[preset]:
        assert external.PRESETS[preset].parse(name) is None, name
    good = [name for name, _, _ in REAL_LOOKING[preset]]
    with pytest.raises(CorpusError) as err:
        external.parse_names(good + BAD[preset], preset, "external.corpora: c")
    message = str(err.value)
    first = sorted(BAD[preset])[:external.SHOWN]
    assert message.startswith(f"external.corpora: c: {len(BAD[preset])} audio file(s) do not "
                              f"fit the {preset} preset ({external.PRESETS[preset].layout}): ")
    assert message.endswith(", ".join(first) + f" and {len(BAD[preset]) - len(first)} more")


def test_a_corpus_found_twice_or_empty_is_refused():
    with pytest.raises(CorpusError, match=r"1 utterance\(s\) found twice .*: "
                       r"a/DC_a01.wav = b/AudioData/DC/a01.wav"):
        external.parse_names(["a/DC_a01.wav", "b/AudioData/DC/a01.wav"], "savee", "x")
    with pytest.raises(CorpusError, match="no audio files"):
        external.parse_names(["notes.txt"], "tess", "x")


def test_the_params_presets_are_the_modules():
    preset = typing.get_type_hints(CorpusParams)["preset"]
    assert set(typing.get_args(preset)) == {*external.PRESETS, "csv"}


@pytest.mark.parametrize("entry, message", [
    ({"name": "a/b", "path": "x", "preset": "tess"}, "corpora[0].name = 'a/b', must be"),
    ({"name": "t", "path": "x", "preset": "iemocap"}, "expected one of"),
    ({"name": "t", "path": " ", "preset": "tess"}, "corpora[0].path = ' ', must name"),
])
def test_bad_corpus_params_are_one_line(entry, message):
    with pytest.raises(params.ParamsError, match=re.escape(message)):
        params.load(REPO / "params.yaml", {"external.corpora": [entry]})
    twice = [{"name": "t", "path": "x", "preset": "tess"}] * 2
    with pytest.raises(params.ParamsError, match=r"names must be distinct; twice: \['t'\]"):
        params.load(REPO / "params.yaml", {"external.corpora": twice})


def test_a_csv_lists_any_audio(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/one.wav", "two.flac"):
        (tmp_path / name).write_bytes(b"x")
    table = tmp_path / "labels.csv"
    table.write_text("path,emotion,speaker,notes\na/one.wav,Angry,s1,loud\ntwo.flac,sad,s2,\n")
    assert external.read_csv(table, "x") == [Recording("a/one.wav", "angry", "s1"),
                                              Recording("two.flac", "sad", "s2")]
    table.write_text("path,emotion\na/one.wav,fear\ntwo.flac,excited\n")
    with pytest.raises(CorpusError, match=r"2 row\(s\) .* not one of RAVDESS's .*: "
                       r"line 2: a/one.wav,fear, line 3: two.flac,excited"):
        external.read_csv(table, "x")
    table.write_text("file,label\na/one.wav,sad\n")
    with pytest.raises(CorpusError, match="path, emotion missing"):
        external.read_csv(table, "x")
    table.write_text("path,emotion\nmissing.wav,sad\n")
    with pytest.raises(CorpusError, match=r"1 file\(s\) of .* not found .*: missing.wav"):
        external.read_csv(table, "x")


# ---------------------------------------------------------------- shared classes
def test_shared_class_scoring_a_seven_class_corpus():
    """A cell of RAVDESS's 8 classes on a corpus of the 7 without calm: calm is taken out
    of every prediction (its probability zeroed and the rest renormalised), so a model
    whose second choice is always right, after calm, scores every utterance right."""
    labels = list(SUBSETS["all"])
    corpus_classes = [c for c in labels if c != "calm"]
    rng = np.random.default_rng(0)
    actual = [corpus_classes[i % 7] for i in range(28)]
    probabilities = rng.uniform(0, 0.05, (28, 8))
    for row, emotion in enumerate(actual):
        probabilities[row, labels.index("calm")] = 0.6          # the model's top: calm
        probabilities[row, labels.index(emotion)] = 0.3         # then the right class
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert external.restrict(probabilities, labels, labels) == ["calm"] * 28
    predicted = external.restrict(probabilities, labels, corpus_classes)
    assert predicted == actual
    renormalised = probabilities.copy()
    renormalised[:, labels.index("calm")] = 0
    renormalised /= renormalised.sum(axis=1, keepdims=True)
    assert [labels[i] for i in renormalised.argmax(axis=1)] == predicted
    table = pd.DataFrame({"speaker": ["A", "B"] * 14, "actual": actual, "predicted": predicted})
    scores = metrics.summarise_corpus(table, corpus_classes)
    assert (scores["ua"], scores["wa"], scores["macro_f1"]) == (1.0, 1.0, 1.0)
    assert list(scores["classes"]) == corpus_classes and "calm" not in scores["classes"]
    assert scores["by_speaker"] == {s: {"ua": 1.0, "wa": 1.0, "macro_f1": 1.0,
                                        "n_utterances": 14} for s in ("A", "B")}


def test_a_cell_without_a_corpus_class_leaves_its_utterances_out(monkeypatch):
    """A `strong` cell (7 classes, no neutral) on a corpus with neutral: the neutral
    recordings are left out and counted; the others are scored over the 6 shared classes."""
    corpus = external.Corpus("c", REPO, [Recording(f"{e}{i}.wav", e, "S1" if i else "S2")
                                         for e in ("neutral", "angry", "sad", "happy")
                                         for i in range(3)])
    strong = external.Cell("cnn-strong", list(SUBSETS["strong"]), [1, 2], None)

    def fake_score(models, inputs, shifts, speakers):  # always "calm", then the right class
        out = []
        for path in inputs:
            emotion = path.rstrip("0123456789.wav")
            probs = {label: 0.01 for label in strong.labels}
            probs["calm"], probs[emotion] = 0.5, 0.4
            out.append(predict.Prediction(path, "calm", probs, 1, []))
        return out

    monkeypatch.setattr(external, "front_end_key", lambda cell: "log-mel")
    monkeypatch.setattr(external, "corpus_inputs",
                        lambda corpus, cell, progress: [r.path for r in corpus.recordings])
    monkeypatch.setattr(predict, "score_inputs", fake_score)
    monkeypatch.setattr(external, "unreadable", lambda corpus: [])
    [(cell, scores)] = list(external.score_corpus(corpus, [strong], [0]))
    m = scores.metrics
    assert m["shared_classes"] == ["happy", "sad", "angry"] and m["left_out"] == {"neutral": 3}
    assert (m["ua"], m["n_utterances"], m["fold_models"]) == (1.0, 9, [1, 2])
    assert set(m["by_speaker"]) == {"S1", "S2"}
    assert {r["predicted"] for r in scores.confusion} == {"happy", "sad", "angry"}
    assert "prior_corrected" not in m                   # off unless asked: the whole corpus
    [(_, corrected)] = list(external.score_corpus(corpus, [strong], [0],
                                                  prior_correction=True))
    em = corrected.metrics["prior_corrected"]
    assert em["ua"] == 1.0 and set(em["priors"]) == {"happy", "sad", "angry"}
    assert sum(em["priors"].values()) == pytest.approx(1.0, abs=1e-3)
    assert corrected.metrics["ua"] == m["ua"]           # the plain score stays the headline


def test_fewer_than_two_shared_classes_is_a_clear_error():
    corpus = external.Corpus("tiny", REPO, [Recording("a.wav", "neutral", ""),
                                            Recording("b.wav", "angry", "")])
    with pytest.raises(CorpusError, match=r"external.corpora: tiny: shares \['angry'\] with the "
                       r"cell cnn-strong .* at least two shared classes"):
        external.shared_classes(list(SUBSETS["strong"]), corpus, "cnn-strong")


# ---------------------------------------------------------------- the stage, end to end
CREMA_CODES = {"angry": "ANG", "disgust": "DIS", "fearful": "FEA", "happy": "HAP",
               "neutral": "NEU", "sad": "SAD"}


def write_crema(folder, utterances):
    """CREMA-D names for synthetic RAVDESS utterances; rates 24414 Hz and 44.1 kHz in turn,
    the first written as AIFF under its .wav name at 96 kHz, the second cut to 1.2 s."""
    folder.mkdir(parents=True)
    for n, utt in enumerate(utterances):
        wave = synthetic.synthesise(utt, seed=0)                       # 48 kHz
        rate = 96000 if n == 0 else (24414, 44100)[n % 2]
        wave = features.resample(wave, synthetic.SAMPLE_RATE, rate)
        if n == 1:
            start = int(np.abs(wave).argmax())                         # 1.2 s around the loudest
            wave = wave[max(0, start - int(0.6 * rate)):][:int(1.2 * rate)]
        name = (f"{1000 + utt.actor}_{('DFA', 'IEO')[utt.statement - 1]}_"
                f"{CREMA_CODES[EMOTIONS[utt.emotion]]}_XX.wav")
        sf.write(folder / name, synthetic.to_pcm16(wave), rate, subtype="PCM_16",
                 format="AIFF" if n == 0 else "WAV")
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A working folder as the stage sees it: params.yaml (one classifier on `all` and
    `strong`, no test-time shifts), models/cnn-{all,strong}/ with random weights at 8 kHz,
    and a CREMA-D-style corpus of 12 synthetic recordings (2 speakers x 6 emotions)."""
    root = tmp_path_factory.mktemp("external")
    for subset in ("all", "strong"):
        save_random_cell(root / "models" / f"cnn-{subset}", small_feature_params(), FOLDS,
                         subset=subset)
    utterances = [Utterance(3, 1, NAME_CODES[e], 1 if e == "neutral" else 2, s, 1, a)
                  for a in (1, 2) for s in (1,) for e in CREMA_CODES]
    write_crema(root / "corpora" / "crema", utterances)
    return root


def run_stage(project, monkeypatch, corpora, capsys):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["cells"]["models"], raw["cells"]["subsets"] = ["cnn"], ["all", "strong"]
    raw["cells"]["heads"] = []          # no encoder here: the cells are the cnn's
    raw["evaluate"]["shifts"] = [0]
    raw["external"]["corpora"] = corpora
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(project)
    monkeypatch.setattr("sys.argv", ["stages/external.py"])
    script = runpy.run_path(str(REPO / "stages" / "external.py"), run_name="external_stage")
    from speech_emotion import stage

    try:
        stage.run(script["main"])
        code = 0
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_a_tiny_corpus_goes_through_the_stage(project, monkeypatch, capsys):
    corpus = project / "corpora" / "crema"
    files = sorted(corpus.iterdir())
    assert sf.info(str(files[0])).format == "AIFF" and files[0].suffix == ".wav"
    assert {sf.info(str(f)).samplerate for f in files} == {96000, 24414, 44100}
    assert min(sf.info(str(f)).duration for f in files) == pytest.approx(1.2, abs=0.01)
    code, out, err = run_stage(project, monkeypatch, [
        {"name": "crema", "path": str(corpus), "preset": "crema_d"}], capsys)
    assert code == 0, err
    for subset, shared, left in (("all", 6, {}), ("strong", 5, {"neutral": 2})):
        m = json.loads((project / f"metrics/external/crema/cnn-{subset}.json").read_text())
        assert len(m["shared_classes"]) == shared and m["left_out"] == left
        assert m["n_utterances"] == 12 - sum(left.values()) and m["fold_models"] == [1, 2]
        assert set(m["by_speaker"]) == {"1001", "1002"}
        assert set(m["classes"]) == set(m["shared_classes"]) and "machine" in m
        for figure in ("ua", "wa", "macro_f1"):
            assert 0 <= m[figure] <= 1
        confusion = json.loads((project / f"plots/external/crema/cnn-{subset}.json").read_text())
        assert len(confusion) == m["n_utterances"]
        assert {r["predicted"] for r in confusion} <= set(m["shared_classes"])
        assert f"crema: cnn-{subset}: UA {m['ua']:.4f}" in out
    # the predictions are predict's probabilities restricted to the shared classes
    cell = predict.load_cell_models(project / "models" / "cnn-all")
    extractor = features.Extractor(cell.feature_params)
    shared = [e for e in cell.labels if e in CREMA_CODES]
    confusion = json.loads((project / "plots/external/crema/cnn-all.json").read_text())
    for path, record in zip(files, confusion, strict=True):
        probs = predict.predict_file(path, cell, extractor).probabilities
        assert record["predicted"] == max(shared, key=probs.get)
    # and the report reads them
    assert report.read_external(project / "metrics/external", ["cnn-all", "cnn-strong"]) == {
        "crema": {f"cnn-{subset}": json.loads(
            (project / f"metrics/external/crema/cnn-{subset}.json").read_text())["ua"]
            for subset in ("all", "strong")}}



def test_corpus_inputs_are_the_same_from_worker_processes(project):
    """Each file read and turned into inputs in forked workers, a few files a task, comes
    back in corpus order with the same arrays as in this process."""
    folder = project / "corpora" / "crema"
    corpus = external.Corpus("crema", folder, [Recording(f.name, "sad", "")
                                               for f in sorted(folder.iterdir())])
    cell = external.load_cell("cnn-all", project / "models" / "cnn-all")
    assert len(corpus.recordings) > external.FILES_PER_TASK      # more than one task
    here = external.corpus_inputs(corpus, cell, workers=1)
    forked = external.corpus_inputs(corpus, cell, workers=2)
    assert [i.path for i in forked] == [folder / r.path for r in corpus.recordings]
    for a, b in zip(here, forked, strict=True):
        assert a.path == b.path and a.notes == b.notes
        assert np.array_equal(a.features, b.features)


def test_the_report_gets_a_column_per_corpus(tmp_path):
    row = report.Row("cnn-all", "cnn", "all", 0.5, None, 0.5, 0.5, {1: (1, 11, 20, 21)})
    probe = report.Row("fhvae-all", "fhvae", "all", 0.4, None, 0.4, 0.4, {1: (1, 11, 20, 21)})
    plain = report.markdown([row, probe])
    assert "UA on" not in plain
    table = report.markdown([row, probe], {"crema": {"cnn-all": 0.3125}, "tess": {}})
    head, rule, first, second = table.splitlines()[:4]
    assert head.endswith("| UA on crema (%) | UA on tess (%) |") and rule.endswith("---:|---:|")
    assert first.endswith("| 50.0 | - | 31.2 | - |") and second.endswith("| 40.0 | - | - | - |")


def test_an_archive_corpus_is_extracted_safely(project, tmp_path):
    corpus = project / "corpora" / "crema"
    zipped = tmp_path / "crema.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in sorted(corpus.iterdir()):
            archive.write(path, f"CREMA-D/AudioWAV/{path.name}")
        archive.writestr("CREMA-D/README.md", "not audio")
    with external.open_corpus(CorpusParams("crema", str(zipped), "crema_d")) as opened:
        assert len(opened.recordings) == 12
        assert opened.classes == [e for e in EMOTION_NAMES if e in CREMA_CODES]
        assert all((opened.root / r.path).is_file() for r in opened.recordings)
        root = opened.root
    assert not root.exists()                                   # the temporary copy is gone
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as archive:
        archive.add(next(corpus.iterdir()), "../1001_DFA_ANG_XX.wav")
    with pytest.raises(CorpusError, match=r"external.corpora: bad: .*evil.tar: refused, 1 "
                       r"member\(s\) would escape"):
        with external.open_corpus(CorpusParams("bad", str(evil), "crema_d")):
            pass


def test_bad_names_and_unreadable_files_stop_the_stage_with_one_line(project, monkeypatch,
                                                                      capsys, tmp_path):
    corpus = tmp_path / "crema"
    corpus.mkdir()
    good = sorted((project / "corpora" / "crema").iterdir())[:4]
    for path in good:
        (corpus / path.name).write_bytes(path.read_bytes())
    (corpus / "1001_DFA_ANGRY_XX.wav").write_bytes(good[0].read_bytes())
    entry = {"name": "crema", "path": str(corpus), "preset": "crema_d"}
    earlier = project / "metrics/external/earlier/cnn-all.json"
    earlier.parent.mkdir(parents=True, exist_ok=True)
    earlier.write_text("{}")
    code, _, err = run_stage(project, monkeypatch, [entry], capsys)
    assert code == 1
    assert err.strip() == ("external: external.corpora: crema: " + str(corpus) + ": 1 audio "
                           "file(s) do not fit the crema_d preset "
                           f"({external.PRESETS['crema_d'].layout}): 1001_DFA_ANGRY_XX.wav")
    (corpus / "1001_DFA_ANGRY_XX.wav").unlink()
    (corpus / "1002_DFA_SAD_XX.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    code, _, err = run_stage(project, monkeypatch, [entry], capsys)
    assert code == 1
    assert err.startswith("external: external.corpora: crema: 1 unreadable file(s):\n  - ")
    assert f"{corpus / '1002_DFA_SAD_XX.wav'}: unreadable audio" in err
    assert earlier.is_file()                          # a failed run leaves the outputs be
    earlier.unlink()


def test_no_corpora_is_a_no_op_with_empty_outputs(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "empty_project"
    empty.mkdir()                                     # no models at all: none is loaded
    code, out, err = run_stage(empty, monkeypatch, [], capsys)
    assert code == 0, err
    assert "external.corpora is empty; nothing to score" in out
    for folder in ("metrics/external", "plots/external"):
        assert (empty / folder).is_dir() and not any((empty / folder).iterdir())


# ---------------------------------------------------------------- odd corpora and files
def test_a_recording_listed_twice_under_other_spellings_is_refused(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "x.wav").write_bytes(b"x")
    (tmp_path / "audio" / "y.wav").write_bytes(b"y")
    (tmp_path / "link.wav").symlink_to(tmp_path / "audio" / "y.wav")
    table = tmp_path / "labels.csv"
    table.write_text("path,emotion\naudio/x.wav,sad\n./audio/x.wav,angry\n\naudio//x.wav,sad\n"
                     f"audio/y.wav,happy\n{tmp_path / 'audio' / 'y.wav'},happy\nlink.wav,sad\n")
    with pytest.raises(CorpusError) as err:
        external.read_csv(table, "x")
    assert str(err.value) == (
        f"x: {table}: 4 recording(s) listed twice (each line once, whatever the spelling of "
        "its path): line 3: ./audio/x.wav = line 2: audio/x.wav, line 5: audio//x.wav = "
        f"line 2: audio/x.wav, line 7: {tmp_path / 'audio' / 'y.wav'} = line 6: audio/y.wav, "
        "line 8: link.wav = line 6: audio/y.wav")          # line 4 is blank


@pytest.mark.parametrize("text, lines", [
    ("path,emotion\na.wav,sad,\nb.wav,angry\n", "line 2"),
    ("path,emotion,speaker\na.wav,sad,s1,extra\nb.wav,angry,s2\nb.wav,angry,s2,x,y\n",
     "line 2, line 4"),
], ids=["trailing-comma", "more-fields"])
def test_more_fields_than_the_header_is_one_line(tmp_path, text, lines):
    table = tmp_path / "labels.csv"
    table.write_text(text)
    with pytest.raises(CorpusError) as err:
        external.read_csv(table, "x")
    assert str(err.value).startswith(f"x: {table}: ") and str(err.value).endswith(
        f"with more fields than the header's {text.count(',', 0, text.index(chr(10))) + 1} "
        f"({text.split(chr(10))[0]}; a trailing comma?): {lines}")


def test_a_float_file_with_nan_samples_is_found_before_scoring(tmp_path, monkeypatch):
    """NaN or infinity past the first block of a float WAV; PCM files are not read twice."""
    wave = np.full((3 * external.BLOCK_FRAMES, 2), 0.1, dtype=np.float32)
    for name, subtype, bad in (("nan.wav", "FLOAT", np.nan), ("inf.wav", "DOUBLE", np.inf),
                               ("ok.wav", "FLOAT", None), ("pcm.wav", "PCM_16", None)):
        samples = wave.copy()
        if bad is not None:
            samples[-5, 1] = bad
        sf.write(tmp_path / name, samples, 16000, subtype=subtype)
    corpus = external.Corpus("c", tmp_path, [Recording(n, "sad", "") for n in
                                             ("nan.wav", "inf.wav", "ok.wav", "pcm.wav")])
    read = []
    real_blocks = sf.SoundFile.blocks
    monkeypatch.setattr(sf.SoundFile, "blocks", lambda self, *a, **k: (
        read.append(self.name), real_blocks(self, *a, **k))[1])
    assert external.unreadable(corpus) == [
        f"{tmp_path / 'nan.wav'}: audio holds NaN or infinite samples",
        f"{tmp_path / 'inf.wav'}: audio holds NaN or infinite samples"]
    assert [Path(name).name for name in read] == ["nan.wav", "inf.wav", "ok.wav"]


def test_a_stage_error_starts_a_line_of_its_own_after_a_progress_bar(capsys):
    """A file refused while a progress bar is drawn: the bar is closed, the error is a line
    of its own, and nothing is drawn after it."""
    import sys

    from tqdm import tqdm

    from speech_emotion import stage
    from speech_emotion.audio import AudioError

    def score(i):
        if i == 3:
            raise AudioError("x.wav: audio holds NaN or infinite samples")

    def main():             # the traceback holds the bar, as corpus_inputs's comprehension does
        bar = tqdm(range(10), desc="crema: log-mel", file=sys.stderr)
        return [score(i) for i in bar]

    with pytest.raises(SystemExit):
        stage.run(main, "external")
    err = capsys.readouterr().err
    assert err.endswith("\nexternal: x.wav: audio holds NaN or infinite samples\n"), repr(err)


def test_a_damaged_or_locked_archive_corpus_is_one_line(tmp_path):
    zipped = tmp_path / "crema.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("AudioWAV/1001_DFA_ANG_XX.wav", b"RIFF" + bytes(3000))
    whole = zipped.read_bytes()
    zipped.write_bytes(whole[:-100])
    with pytest.raises(CorpusError) as err:
        with external.open_corpus(CorpusParams("crema", str(zipped), "crema_d")):
            pass
    assert str(err.value) == (f"external.corpora: crema: {zipped}: a damaged or truncated zip "
                              "(it starts as one, but the directory at its end is missing or "
                              "broken): copy or download it again")
    data = bytearray(whole)                               # password-protected (zip -P)
    for signature, offset in ((b"PK\x01\x02", 8), (b"PK\x03\x04", 6)):
        data[data.find(signature) + offset] |= 1
    zipped.write_bytes(bytes(data))
    with pytest.raises(CorpusError) as err:
        with external.open_corpus(CorpusParams("crema", str(zipped), "crema_d")):
            pass
    assert "\n" not in str(err.value) and str(err.value).startswith(
        f"external.corpora: crema: {zipped}: 1 member(s) encrypted (a password-protected zip), "
        "e.g. 'AudioWAV/1001_DFA_ANG_XX.wav'")

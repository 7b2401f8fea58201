"""params.yaml is validated on load: wrong types, unknown and missing keys name the key."""

from pathlib import Path

import pytest
import yaml

from speech_emotion import params

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, raw):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repository_params_load():
    loaded = params.load(ROOT / "params.yaml")
    assert loaded.data.source in {"synthetic", "zenodo", "local"}
    assert loaded.features.sample_rate > 0
    assert set(loaded.as_dict()) == set(params.SECTIONS)


def _set(section, key, value):
    def change(raw):
        raw[section][key] = value
    return change


def _delete(section, key):
    def change(raw):
        del raw[section][key]
    return change


def _add_section(name):
    def change(raw):
        raw[name] = {}
    return change


@pytest.mark.parametrize("change, message", [
    (_set("features", "n_mels", "sixty-four"), r"features\.n_mels.*must be int"),
    (_set("features", "n_mels", True), r"features\.n_mels"),              # a bool is no int
    (_set("features", "n_mel", 64), r"unknown key\(s\) features\.n_mel"),
    (_add_section("featurez"), "unknown section.*featurez"),
    (_delete("split", "seed"), r"missing key\(s\) split\.seed"),
    (_set("data", "source", "kaggle"), r"data\.source.*expected one of"),
    (_set("evaluate", "shifts", []), r"evaluate\.shifts = \[\], give at least one shift"),
    (lambda raw: raw["train"]["augment"]["warp"].update(freq=1.0),
     r"train\.augment\.warp\.freq = 1\.0, must be in \[0, 1\)"),
], ids=["wrong-type", "bool-is-not-int", "unknown-key", "unknown-section", "missing-key",
        "literal-choices", "no-shift", "warp-factor-not-positive"])
def test_bad_params_name_the_key(tmp_path, raw, change, message):
    change(raw)
    with pytest.raises(params.ParamsError, match=message):
        params.load(_write(tmp_path, raw))


def test_optional_and_list_items(tmp_path, raw):
    raw["data"]["local_path"] = 3
    with pytest.raises(params.ParamsError, match=r"data\.local_path"):
        params.load(_write(tmp_path, raw))
    raw["data"]["local_path"] = None
    raw["split"]["folds"] = [1, "two"]
    with pytest.raises(params.ParamsError, match=r"split\.folds\[1\]"):
        params.load(_write(tmp_path, raw))


def test_int_accepted_for_float(tmp_path, raw):
    raw["features"]["duration_s"] = 3
    loaded = params.load(_write(tmp_path, raw))
    assert loaded.features.duration_s == 3.0 and isinstance(loaded.features.duration_s, float)


def test_overrides(tmp_path, raw):
    loaded = params.load(_write(tmp_path, raw), overrides={"split.folds": [2, 3]})
    assert loaded.split.folds == [2, 3]


def test_not_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(params.ParamsError, match="not valid YAML"):
        params.load(path)


# ---------------------------------------------------------------- ranges
# Every value known to be wrong when params.yaml is read is refused then, in one line that
# names the key, the value and what is allowed: the first stage to run refuses it.
RANGES = [
    ("train.epochs", 0, "train.epochs = 0, must be >= 1"),
    ("train.epochs", -1, "train.epochs = -1, must be >= 1"),
    ("train.batch_size", -4, "train.batch_size = -4, must be >= 1"),
    ("train.batch_size", 0, "train.batch_size = 0, must be >= 1"),
    ("features.n_mels", 0, "features.n_mels = 0, must be >= 1"),
    ("split.folds", [7], "split.folds = [7], must be distinct folds of protocol emobox (1-6)"),
    ("split.folds", [], "split.folds = [], must be distinct folds"),
    ("split.folds", [1, 1], "split.folds = [1, 1], must be distinct"),
    ("split.protocol", "loso", None),                         # folds [1] exist under loso too
    ("split.folds", [25], "split.folds = [25], must be distinct folds of protocol emobox (1-6)"),
    ("split.validation_actors", 1, "split.validation_actors = 1, must be in 2-19"),
    ("split.validation_actors", 20, "split.validation_actors = 20, must be in 2-19"),
    ("features.f_max", 8001.0, ("features.f_max = 8001.0, must be above f_min (20.0) and at "
                               "most sample_rate / 2 (8000)")),
    ("features.f_min", 8000.0, "features.f_max = 8000.0, must be above f_min (8000.0)"),
    ("features.win_length", 513, "features.win_length = 513, must be in 1..n_fft (n_fft = 512)"),
    ("features.hop_length", 0, "features.hop_length = 0, must be >= 1"),
    ("features.n_fft", 0, "features.n_fft = 0, must be >= 1"),
    ("features.sample_rate", -16000, "features.sample_rate = -16000, must be >= 1"),
    ("features.duration_s", 0.01, ("features.duration_s = 0.01, gives 160 samples; a clip must "
                                  "be longer than n_fft (512)")),
    ("features.batch_size", 0, "features.batch_size = 0, must be >= 1"),
    ("features.top_db", 0, "features.top_db = 0.0, must be > 0"),
    ("cnn.channels", [], "cnn.channels = [], must be a non-empty list of positive integers"),
    ("cnn.channels", [16, 0], "cnn.channels = [16, 0], must be a non-empty list"),
    ("cnn.kernel_size", 4, "cnn.kernel_size = 4, must be a positive odd integer"),
    ("cnn.dropout", 1.5, "cnn.dropout = 1.5, must be in [0, 1]"),
    ("cnn.deltas", 3, "cnn.deltas = 3, must be 0, 1 or 2"),
    ("cnn_transformer.n_heads", 3, ("cnn_transformer.d_model = 64, must be a multiple of "
                                   "n_heads (3)")),
    ("cnn_transformer.kernel_sizes", [3, 4], ("cnn_transformer.kernel_sizes = [3, 4], kernel "
                                             "sizes must be odd")),
    ("cnn_transformer.branch_dropout", 1.0, ("cnn_transformer.branch_dropout = 1.0, must be "
                                            "in [0, 1)")),
    # more of the same kinds
    ("train.optim.lr", -0.001, "train.optim.lr = -0.001, must be > 0"),
    ("train.optim.lr", float("nan"), "'train.optim.lr' must be a finite number, got nan"),
    ("train.optim.weight_decay", float("inf"), "'train.optim.weight_decay' must be a finite"),
    ("train.epochs", 2.0, "'train.epochs' must be int, got 2.0"),
    ("train.label_smoothing", 1.1, "train.label_smoothing = 1.1, must be in [0, 1]"),
    ("train.threads", -1, "train.threads = -1, must be >= 0"),
    ("train.augment.noise.p", 2.0, "train.augment.noise.p = 2.0, must be in [0, 1]"),
    ("train.augment.noise.snr_db_max", 5.0, ("train.augment.noise.snr_db_max = 5.0, must be "
                                            ">= snr_db_min (10.0)")),
    ("train.augment.mixup_alpha", -0.2, "train.augment.mixup_alpha = -0.2, must be >= 0"),
    ("cells.models", ["cnn", "svm"], "cells.models = ['cnn', 'svm'], unknown ['svm']"),
    ("data.local_path", "", "data.local_path = '', must name a folder or archive"),
    ("data.synthetic.actors", 25, "data.synthetic.actors = 25, must be in 1-24"),
    ("data.zenodo.md5", "abc", "data.zenodo.md5 = 'abc', must be 32 hexadecimal digits"),
    ("data.zenodo.retries", 0, "data.zenodo.retries = 0, must be >= 1"),
    ("describe.pitch_max_hz", 50.0, "describe.pitch_max_hz = 50.0, must be above pitch_min_hz"),
    ("describe.example_actor", 0, "describe.example_actor = 0, must be in 1-24"),
    ("represent.beta_vae.epochs", 0, "represent.beta_vae.epochs = 0, must be >= 1"),
    ("represent.fhvae.supervised_weight", 1.0, ("represent.fhvae.supervised_weight = 1.0, must "
                                               "be 0")),
    ("represent.ss_fhvae.supervised_weight", 0.0, ("represent.ss_fhvae.supervised_weight = 0.0, "
                                                  "must be > 0")),
    ("represent.segment_frames", 200, ("represent.segment_frames = 200, must be at most the "
                                      "clip's 151 frames")),
    ("represent.beta_vae.channels", [16, 32, 32, 32], ("represent.beta_vae.channels = "
                                                      "[16, 32, 32, 32], 4 halvings need")),
    ("probe.C", 0.0, "probe.C = 0.0, must be > 0"),
    ("encode.grid", 0, ("encode.grid = 0, the heads ['whisper_asp'] read the frames' grid: "
                        "set encode.grid")),
    ("whisper_asp.attention", 0, "whisper_asp.attention = 0, must be >= 1"),
    ("whisper_asp.statistics", ["std", "std"], "whisper_asp.statistics = ['std', 'std'], must"),
    ("evaluate.shifts", [0, 151], ("evaluate.shifts = [0, 151], every shift must be shorter "
                                  "than the clip's 151 frames")),
]


@pytest.mark.parametrize("key, value, message", RANGES,
                         ids=[f"{k}={v}" for k, v, _ in RANGES])
def test_out_of_range_values_are_refused_on_load(tmp_path, raw, key, value, message):
    path = _write(tmp_path, raw)
    if message is None:
        params.load(path, overrides={key: value})
        return
    with pytest.raises(params.ParamsError) as err:
        params.load(path, overrides={key: value})
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "\n" not in text                                  # one line


def test_cross_section_rules_only_where_the_cell_runs(tmp_path, raw):
    """A rule for a cell that does not run is not applied: beta_vae's halvings, segments."""
    path = _write(tmp_path, raw)
    params.load(path, overrides={"cells.variants": ["logmel_stats"],
                                 "represent.segment_frames": 200,
                                 "represent.beta_vae.channels": [16, 32, 32, 32]})
    with pytest.raises(params.ParamsError, match="needs features.kind = logmel"):
        params.load(path, overrides={"features.kind": "mfcc",
                                     "train.augment.noise.enabled": True})


def test_range_checks_are_not_recorded_as_reads(tmp_path, raw):
    """The checks read every field on load; a stage's recorded reads stay its own."""
    params._READS.clear()
    params.load(_write(tmp_path, raw))
    assert params.reads() == []


def test_protocol_shapes_match_the_fold_lists():
    from speech_emotion.folds import protocol_folds

    for protocol, (count, test_actors) in params.PROTOCOLS.items():
        table = protocol_folds(protocol)
        assert sorted(table) == list(range(1, count + 1))
        assert {len(actors) for actors in table.values()} == {test_actors}


def test_check_command_names_a_misspelled_key(tmp_path, raw, capsys):
    """`speech-emotion check`: what to run before `dvc repro`, since DVC meets a misspelled
    key before any stage does (docs/RELIABILITY.md)."""
    from speech_emotion import cli

    path = _write(tmp_path, raw)
    assert cli.main(["check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"
    raw["train"]["epoch"] = raw["train"].pop("epochs")
    path = _write(tmp_path, raw)
    assert cli.main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {path}: unknown key(s) train.epoch\n") or (
        "unknown key(s) train.epoch" in err and err.count("\n") == 1), err


# ---------------------------------------------------------- encodings, duplicates, seeds, sizes
# params that `check` used to pass, or answer with a traceback, and a stage then failed on.
def _lines(raw):
    return yaml.safe_dump(raw, sort_keys=False).splitlines()


def _check(path, capsys):
    from speech_emotion import cli

    code = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_latin1_params_file_is_one_line(tmp_path, raw, capsys):
    path = tmp_path / "params.yaml"
    path.write_bytes(("# café\n" + yaml.safe_dump(raw)).encode("latin-1"))
    with pytest.raises(params.ParamsError, match=r"not UTF-8 text \(byte 0xe9 at offset 5\); "
                       "save the file as UTF-8"):
        params.load(path)
    code, _, err = _check(path, capsys)
    assert code == 1 and err.count("\n") == 1 and "not UTF-8" in err


def test_a_duplicate_key_is_refused_naming_both_lines(tmp_path, raw, capsys):
    lines = _lines(raw)
    at = lines.index("train:") + 1
    lines.insert(at, "  seed: 5")
    lines.insert(at + 1, "  seed: 6")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    message = (f"{path}: line {at + 2}: duplicate key 'seed' (also on line {at + 1}); give "
               "each key once (DVC refuses such a file)")
    with pytest.raises(params.ParamsError) as err:
        params.load(path)
    assert str(err.value) == message
    assert _check(path, capsys) == (1, "", f"error: {message}\n")
    # a flow mapping on one line, and a top-level section given twice
    path.write_text("a: {x: 1, x: 2}\n")
    with pytest.raises(params.ParamsError, match="line 1: duplicate key 'x' .also on line 1"):
        params.load(path)
    path.write_text(yaml.safe_dump(raw) + "train: {}\n")
    with pytest.raises(params.ParamsError, match="duplicate key 'train'"):
        params.load(path)


def test_merge_keys_may_repeat(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("base: &b {a: 1}\nother: {<<: *b, a: 2}\n")
    assert params.parse_yaml(path.read_text(), "x") == {"base": {"a": 1}, "other": {"a": 2}}


@pytest.mark.parametrize("key, value, message", [
    ("train.seed", 99999999999999999999999999,
     "train.seed = 99999999999999999999999999, must be in 0..4294967295"),
    ("train.seed", -1, "train.seed = -1, must be in 0..4294967295"),
    ("train.seed", 2**32 - 1, None),
    ("split.seed", 2**32, "split.seed = 4294967296, must be in 0..4294967295"),
    ("represent.seed", 2**40, "represent.seed = 1099511627776, must be in 0..4294967295"),
    ("probe.seed", 2**32, "probe.seed = 4294967296, must be in 0..4294967295"),
    ("data.synthetic.seed", 2**64, "data.synthetic.seed = 18446744073709551616, must be in"),
], ids=["train-huge", "train-negative", "train-largest", "split", "represent", "probe",
        "synthetic"])
def test_seeds_are_what_numpy_and_torch_take(tmp_path, raw, key, value, message):
    path = _write(tmp_path, raw)
    if message is None:
        assert params.load(path, overrides={key: value}).train.seed == value
        return
    with pytest.raises(params.ParamsError) as err:
        params.load(path, overrides={key: value})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_ensembles_seeds_all_fit(tmp_path, raw):
    path = _write(tmp_path, raw)
    with pytest.raises(params.ParamsError, match=r"train.seed = 4294967295, must be in "
                       r"0..4294967294 .*with 2 consecutive seeds"):
        params.load(path, overrides={"train.seed": 2**32 - 1, "train.ensemble": 2})


def test_more_mel_bands_than_stft_bins_is_refused(tmp_path, raw):
    path = _write(tmp_path, raw)
    with pytest.raises(params.ParamsError, match=r"features.n_mels = 1000, must be at most "
                       r"n_fft / 2 \+ 1 \(257, the STFT's frequency bins at n_fft = 512\)"):
        params.load(path, overrides={"features.n_mels": 1000, "features.n_fft": 512})
    params.load(path, overrides={"features.n_mels": 257, "features.n_fft": 512,
                                 "cells.variants": ["logmel_stats"]})


@pytest.mark.parametrize("name", ["a" * 101, "x" * 300])
def test_a_corpus_name_too_long_for_a_folder_is_refused(tmp_path, raw, name):
    path = _write(tmp_path, raw)
    with pytest.raises(params.ParamsError) as err:
        params.load(path, overrides={"external.corpora": [
            {"name": name, "path": "x", "preset": "tess"}]})
    text = str(err.value)
    assert "external.corpora[0].name = 'aaaa" in text or "name = 'xxxx" in text
    assert "at most 100 characters" in text and len(text) < 300
    params.load(path, overrides={"external.corpora": [
        {"name": "a" * 100, "path": "x", "preset": "tess"}]})


def test_a_huge_value_is_cut_in_the_message(tmp_path, raw, capsys):
    """An alias bomb (each level nine of the one below) in a known key: the message quotes
    the first 80 characters, at once."""
    bomb = "[&a [" + ",".join(['"lol"'] * 9) + "]"
    for level, below in zip("bcdefghi", "abcdefgh", strict=True):
        bomb += f", &{level} [" + ",".join([f"*{below}"] * 9) + "]"
    bomb += "]"
    lines = _lines(raw)
    at = next(i for i, line in enumerate(lines) if line.startswith("  n_mels:"))
    lines[at] = "  n_mels: " + bomb
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = _check(path, capsys)
    assert code == 1 and err.startswith(f"error: {path}: 'features.n_mels' must be int, got "
                                        "[['lol', ")
    assert len(err.split(" got ", 1)[1]) == 80 + len("...\n")
    for key, value in (("encode.frames", "w" * 10**6), ("split.folds", list(range(10**5))),
                       ("data.zenodo.md5", "f" * 10**6), ("train.optim.lr", 10**400)):
        with pytest.raises(params.ParamsError) as error:
            params.load(_write(tmp_path, raw), overrides={key: value})
        assert len(str(error.value)) < 250, (key, str(error.value)[:300])


def test_a_number_too_long_to_read_is_one_line(tmp_path, raw):
    lines = _lines(raw)
    at = lines.index("train:") + 1
    assert lines[at] == "  seed: 0"
    lines[at] = "  seed: " + "9" * 5000
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(params.ParamsError) as err:
        params.load(path)
    assert "not valid YAML: unreadable value" in str(err.value)
    assert f"(line {at + 1}, column 9)" in str(err.value) and "\n" not in str(err.value)


def test_check_on_a_folder_and_check_help(tmp_path, capsys):
    assert _check(tmp_path, capsys) == (1, "", f"error: {tmp_path}: a directory, not a params "
                                        "file\n")
    from speech_emotion import cli

    assert cli.main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: speech-emotion check") and "params.yaml" in out
    assert cli.main(["check", "-h"]) == 0
    assert "usage: speech-emotion check" in capsys.readouterr().out


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(params.ParamsError) as err:
        params.load(path)
    assert "not valid YAML" in str(err.value) and "\n" not in str(err.value)
    assert "(line 2, column 1)" in str(err.value)

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


# ---------------------------------------------------------------- ranges (issue 26)
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
    # more of the same kinds, not in the issue
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

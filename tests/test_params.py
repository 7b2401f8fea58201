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
    (_set("evaluate", "shifts", []), r"evaluate\.shifts: give at least one shift"),
    (lambda raw: raw["train"]["augment"]["warp"].update(freq=1.0),
     r"train\.augment\.warp\.freq must be in \[0, 1\)"),
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

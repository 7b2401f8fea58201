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


def test_wrong_type_names_the_key(tmp_path, raw):
    raw["features"]["n_mels"] = "sixty-four"
    with pytest.raises(params.ParamsError, match=r"features\.n_mels.*must be int"):
        params.load(_write(tmp_path, raw))


def test_bool_is_not_an_int(tmp_path, raw):
    raw["features"]["n_mels"] = True
    with pytest.raises(params.ParamsError, match=r"features\.n_mels"):
        params.load(_write(tmp_path, raw))


def test_unknown_key_names_the_key(tmp_path, raw):
    raw["features"]["n_mel"] = 64
    with pytest.raises(params.ParamsError, match=r"unknown key\(s\) features\.n_mel"):
        params.load(_write(tmp_path, raw))


def test_unknown_section(tmp_path, raw):
    raw["featurez"] = {}
    with pytest.raises(params.ParamsError, match="unknown section.*featurez"):
        params.load(_write(tmp_path, raw))


def test_missing_key(tmp_path, raw):
    del raw["split"]["seed"]
    with pytest.raises(params.ParamsError, match=r"missing key\(s\) split\.seed"):
        params.load(_write(tmp_path, raw))


def test_literal_choices(tmp_path, raw):
    raw["data"]["source"] = "kaggle"
    with pytest.raises(params.ParamsError, match=r"data\.source.*expected one of"):
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

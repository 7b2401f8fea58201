"""The HDF5 layout of `data/processed/features.h5`.

    /                      file attributes: every `features` param (kind, sample_rate, ...)
    /features              float32 (N, F, T), contiguous; row i is row i of data.csv
    /index                 compound (N,): path, stem and the seven codes of each row
    /statement_1/Actor_01/emotion_05/intensity_2/repetition_1
                           (F, T) float32, an HDF5 *virtual dataset* that maps onto
                           /features[row]: the nested view holds no copy of the data.
                           Attributes: file, emotion, intensity, actor, gender, sample_rate
                           and frames (of the source audio, as in data.csv), row.

The flat view is for training (one contiguous read); the nested view is for people
walking the file by hand (h5py, HDFView, h5dump), and reads like an ordinary dataset.

The same table, features and params give a byte-identical file: datasets and groups are
written in table order without timestamps (h5py >= 3.15), attributes in a fixed order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .atomic import atomic_path
from .params import FeatureParams
from .ravdess import CODE_COLUMNS, actor_dir

FEATURES = "features"
INDEX = "index"
INDEX_COLUMNS = ("path", "stem") + CODE_COLUMNS
# Settings that do not change the features, so a model may ignore a difference in them
# (batch_size: features'; workers, download and frames: encode's, for encoded.h5).
NOT_FEATURE_DEFINING = ("batch_size", "workers", "download", "frames")


class StoreError(ValueError):
    """A features file that is missing, malformed, or made with other params."""


@dataclass
class FeatureSet:
    """The flat view of features.h5."""

    features: np.ndarray        # (N, F, T) float32
    index: pd.DataFrame         # N rows aligned to data.csv: INDEX_COLUMNS
    attrs: dict[str, Any]       # the features params that made it
    copies: np.ndarray | None = None  # (N, K, F, T): K changed training copies of each row
                                      # (encoded.h5 under encode.copies), or None

    def rows(self, paths: Iterable[str]) -> np.ndarray:
        """Row positions of the utterances with these data.csv `path`s, in that order."""
        position = pd.Series(np.arange(len(self.index)), index=self.index["path"])
        paths = list(paths)
        missing = [p for p in paths if p not in position.index]
        if missing:
            raise StoreError(f"{len(missing)} utterance(s) not in the features file, e.g. "
                             f"{missing[0]}; re-run the features stage")
        return position.loc[paths].to_numpy()


def leaf_name(statement: int, actor: int, emotion: int, intensity: int, repetition: int) -> str:
    """`statement_1/Actor_01/emotion_05/intensity_2/repetition_1`."""
    return (f"statement_{statement}/{actor_dir(actor)}/emotion_{emotion:02d}/"
            f"intensity_{intensity}/repetition_{repetition}")


def write(path: str | Path, table: pd.DataFrame, features: np.ndarray,
          params: FeatureParams) -> None:
    """Write `features` (N, F, T) for the N rows of `table` (data.csv) to `path`, atomically."""
    _check_inputs(table, features)
    names = [leaf_name(r.statement, r.actor, r.emotion, r.intensity, r.repetition)
             for r in table.itertuples()]
    if len(set(names)) != len(names):
        twice = pd.Series(names)[pd.Series(names).duplicated()].iloc[0]
        raise StoreError(f"two rows of the table map to the same utterance {twice}")
    features = np.ascontiguousarray(features, dtype=np.float32)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in dataclasses.asdict(params).items():
            f.attrs[key] = value
        flat = f.create_dataset(FEATURES, data=features, track_times=False)
        f.create_dataset(INDEX, data=index_records(table), track_times=False)
        for row, (name, utt) in enumerate(zip(names, table.itertuples(), strict=True)):
            leaf = _create_leaf(f, name, flat, row)
            leaf.attrs["file"] = utt.path
            leaf.attrs["emotion"] = utt.emotion_name
            leaf.attrs["intensity"] = utt.intensity_name
            leaf.attrs["actor"] = int(utt.actor)
            leaf.attrs["gender"] = utt.gender
            leaf.attrs["sample_rate"] = int(utt.sample_rate)
            leaf.attrs["frames"] = int(utt.frames)
            leaf.attrs["row"] = row


def _create_leaf(f: h5py.File, name: str, flat: h5py.Dataset, row: int) -> h5py.Dataset:
    """A virtual dataset `name` of shape (F, T) that maps onto `flat[row]` in the same file.

    Made with the low-level API because h5py's `create_virtual_dataset` keeps the
    object's timestamps, which would make every file different.
    """
    group_name, leaf_name_ = name.rsplit("/", 1)
    group = f.require_group(group_name)                   # track_times=False in h5py >= 3.15
    source = flat.id.get_space()                          # (N, F, T) of /features
    source.select_hyperslab((row, 0, 0), (1,) + flat.shape[1:])
    space = h5py.h5s.create_simple(flat.shape[1:])        # (F, T)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    dcpl.set_virtual(space, b".", f"/{FEATURES}".encode(), source)  # "." = this same file
    dtype = h5py.h5t.py_create(flat.dtype, logical=True)
    return h5py.Dataset(h5py.h5d.create(group.id, leaf_name_.encode(), dtype, space, dcpl=dcpl))


def read(path: str | Path) -> FeatureSet:
    """The flat view: the whole matrix, its index and the params that made it."""
    features, index, attrs = read_dataset(path, FEATURES, _param_names(), "features")
    return FeatureSet(features, index, attrs)


def read_dataset(path: str | Path, dataset: str, names: list[str], stage: str
                 ) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    """`dataset`, the index and the attributes `names` of the store `stage` writes
    (features.h5, encoded.h5); StoreError naming the file when it is missing or not one."""
    path = Path(path)
    what = "features file" if stage == "features" else f"{stage} stage's file"
    if not path.is_file():
        raise StoreError(f"{path}: no {what}; run the {stage} stage (dvc repro {stage})")
    try:
        with h5py.File(path, "r") as f:
            data = f[dataset][()]
            records = f[INDEX][()]
            attrs = {key: plain(f.attrs[key]) for key in names if key in f.attrs}
    except (OSError, KeyError) as err:
        raise StoreError(f"{path}: not a {what} ({err})") from None
    missing = [key for key in names if key not in attrs]
    if missing:
        raise StoreError(f"{path}: {stage} params missing from its attributes: "
                         f"{', '.join(missing)}; re-run the {stage} stage")
    return data, index_frame(records), attrs


def index_frame(records: np.ndarray) -> pd.DataFrame:
    """The /index records (`index_records`) back as a DataFrame typed as data.csv reads."""
    index = pd.DataFrame({column: records[column] for column in INDEX_COLUMNS})
    for column in ("path", "stem"):
        index[column] = index[column].str.decode("utf-8")
    return index.astype({code: "int64" for code in CODE_COLUMNS})


def read_aligned(path: str | Path, table: pd.DataFrame, params: FeatureParams) -> FeatureSet:
    """The store's features in the row order of `table` (data.csv), checked against `params`.

    What every stage that trains or scores on the store starts with: refuse features made
    with other params, then line the matrix up with the table it was given.
    """
    feature_set = read(path)
    check_params(feature_set.attrs, params)
    rows = feature_set.rows(table["path"])
    return FeatureSet(feature_set.features[rows],
                      feature_set.index.iloc[rows].reset_index(drop=True), feature_set.attrs)


def check_params(attrs: dict[str, Any], params: FeatureParams) -> None:
    """Raise StoreError when the features were made with other `features` params."""
    wanted = dataclasses.asdict(params)
    differ = [f"{key}: file has {attrs.get(key)!r}, params say {value!r}"
              for key, value in wanted.items()
              if key not in NOT_FEATURE_DEFINING and attrs.get(key) != value]
    if differ:
        raise StoreError("features were made with other features params (" + "; ".join(differ)
                         + "); re-run the features stage or use the params they were made with")


def feature_differences(expected: dict[str, Any], got: dict[str, Any]) -> str:
    """`key expected != got` for every feature param that changes the features; '' if none.

    Settings that do not change the features (`NOT_FEATURE_DEFINING`, e.g. the batch size
    of the transform) are not compared.
    """
    keys = sorted((set(expected) | set(got)) - set(NOT_FEATURE_DEFINING))
    return ", ".join(f"{key} {expected.get(key, '(missing)')!r} != {got.get(key, '(missing)')!r}"
                     for key in keys if expected.get(key) != got.get(key))


def _check_inputs(table: pd.DataFrame, features: np.ndarray) -> None:
    needed = set(INDEX_COLUMNS) | {"emotion_name", "intensity_name", "gender", "sample_rate",
                                   "frames"}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise StoreError(f"table lacks data.csv column(s) {', '.join(missing)}")
    if features.ndim != 3 or features.shape[0] != len(table):
        raise StoreError(f"features of shape {features.shape} do not match the table's "
                         f"{len(table)} rows (expected (N, F, T))")
    if not np.isfinite(features).all():
        raise StoreError("features hold NaN or infinite values")


def index_records(table: pd.DataFrame) -> np.ndarray:
    """The index as a fixed-width structured array (HDF5 compound, no variable-length data)."""
    width = {column: max(1, table[column].str.len().max()) for column in ("path", "stem")}
    dtype = [("path", f"S{width['path']}"), ("stem", f"S{width['stem']}")]
    dtype += [(code, "<i4") for code in CODE_COLUMNS]
    records = np.empty(len(table), dtype=dtype)
    for column in ("path", "stem"):
        records[column] = table[column].str.encode("utf-8").to_numpy()
    for code in CODE_COLUMNS:
        records[code] = table[code].to_numpy()
    return records


def _param_names() -> list[str]:
    return [field.name for field in dataclasses.fields(FeatureParams)]


def plain(value: Any) -> Any:
    """numpy scalars from h5py attributes -> Python int / float / str."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value

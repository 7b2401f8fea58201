"""The latent tables: what `represent` writes and `probe` reads, `models/<variant>-<subset>/
fold<k>.csv`: one row per utterance of data.csv's subset, `stem` then `<group>_<i>` columns
(e.g. `z2_0 .. z2_15`, `z1_0 ..`), values rounded to 6 decimals so reruns write the same
bytes. No torch here: the probes read the tables without loading the models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .folds import Fold


class LatentsError(ValueError):
    """A latent table that is missing; the message names the file."""


def latents_path(model_dir: str | Path, fold_number: int) -> Path:
    """`models/<variant>-<subset>/fold<k>.csv`: the latent table of one fold."""
    return Path(model_dir) / f"fold{fold_number}.csv"


def latent_table(stems: pd.Series, groups: dict[str, np.ndarray]) -> pd.DataFrame:
    """`stem` plus `<group>_<i>` columns, one row per utterance, rounded for stable files."""
    columns = {"stem": stems.to_numpy()}
    for name, values in groups.items():
        for i in range(values.shape[1]):
            columns[f"{name}_{i}"] = np.round(values[:, i].astype(np.float64), 6)
    return pd.DataFrame(columns)


def group_columns(latents: pd.DataFrame) -> dict[str, list[str]]:
    """Group name -> its columns, in the table's order."""
    groups: dict[str, list[str]] = {}
    for column in latents.columns:
        if column != "stem":
            groups.setdefault(column.rsplit("_", 1)[0], []).append(column)
    return groups


def read_latents(model_dir: str | Path, folds: list[Fold]) -> dict[int, pd.DataFrame]:
    """Fold number -> latent table, for the folds given; a clear error when one is missing."""
    out = {}
    for fold in folds:
        path = latents_path(model_dir, fold.number)
        if not path.is_file():
            raise LatentsError(f"{path}: no latent table for fold {fold.number}; "
                               "run the represent stage with the same split params")
        out[fold.number] = pd.read_csv(path, dtype={"stem": str})
    return out

"""What a classifier reads, by its name: the log-mel store (features.h5) for the log-mel
models, the encoder's store (encoded.h5) for the heads over the pretrained encoder.
Either comes as a `store.FeatureSet` (N, F, T) in data.csv's row order, checked against
the current params, so training and scoring code serve both alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from . import store
from .params import GRID_HEADS, HEAD_MODELS, Params
from .paths import ENCODED, FEATURES


def path_of(model: str) -> Path:
    return ENCODED if model in HEAD_MODELS else FEATURES


def read(model: str, table: pd.DataFrame, params: Params) -> store.FeatureSet:
    """The model's input rows for `table` (data.csv), made with the current params."""
    if model in HEAD_MODELS:
        from . import encoded  # here: the log-mel models' stages need none of it
        feature_set = encoded.read(ENCODED, grid=model in GRID_HEADS)
    else:
        feature_set = store.read(FEATURES)
    check(feature_set.attrs, params)
    rows = feature_set.rows(table["path"])
    return store.FeatureSet(feature_set.features[rows],
                            feature_set.index.iloc[rows].reset_index(drop=True),
                            feature_set.attrs,
                            None if feature_set.copies is None else feature_set.copies[rows])


def check(attrs: dict[str, Any], params: Params) -> None:
    """StoreError unless the store (either kind, told by its attributes) was made with the
    current `features` or `encode` params."""
    if "weights_sha256" in attrs:
        from . import encoded
        encoded.check_params(attrs, params.encode)
    else:
        store.check_params(attrs, params.features)

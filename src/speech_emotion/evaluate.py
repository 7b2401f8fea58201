"""Score a trained cell `models/<model>-<subset>/` on the test actors of each of its folds.

For every fold that the current params run (`speech_emotion.folds`, on the actors present
in the subset's rows of data.csv), the fold's checkpoint is loaded and checked before any
utterance is scored:
- its fold (number, test, validation and training actors) is the fold the params give now,
  so a stale model trained on other folds cannot be scored on actors it trained on;
- its subset and labels are the cell's;
- its feature params equal those stored with `features.h5`, and those equal the current
  `features` params.
Then only the fold's test utterances are scored (`evaluate.shifts`: each as time-shifted
copies, their class probabilities averaged). The figures come from
`speech_emotion.metrics`; the confusion records feed DVC's confusion template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import inputs, metrics
from .folds import Fold, from_split, split_rows, subset_table
from .metrics import PROTOCOLS
from .params import Params
from .ravdess import SUBSETS
from .store import FeatureSet, feature_differences


class EvaluateError(ValueError):
    """A checkpoint that does not belong to this cell, fold or feature store."""


@dataclass
class CellScores:
    """What scoring one cell's fold models on their test actors gives."""

    metrics: dict[str, Any]            # the metrics JSON
    confusion: list[dict[str, str]]    # one {actual, predicted} record per test utterance
    predictions: pd.DataFrame          # metrics.PREDICTION_COLUMNS, path and each class's
                                       # probability, one row per test utterance


def check_checkpoint(checkpoint: dict[str, Any], path: Path, fold: Fold, subset: str,
                     store_attrs: dict[str, Any]) -> None:
    """Refuse a checkpoint of another fold, subset, label set or feature params."""
    saved = checkpoint.get("fold", {})
    problems = []
    if int(saved.get("number", -1)) != fold.number:
        problems.append(f"fold number {saved.get('number')} (expected {fold.number})")
    for side in ("test_actors", "validation_actors", "train_actors"):
        got = sorted(int(a) for a in saved.get(side, []))
        if got != sorted(getattr(fold, side)):
            problems.append(f"{side} {got} (the current split params give "
                            f"{sorted(getattr(fold, side))})")
    if checkpoint.get("subset") != subset:
        problems.append(f"subset {checkpoint.get('subset')!r} (expected {subset!r})")
    if list(checkpoint.get("labels", [])) != list(SUBSETS[subset]):
        problems.append(f"labels {list(checkpoint.get('labels', []))} "
                        f"(expected {list(SUBSETS[subset])})")
    differ = feature_differences(store_attrs, checkpoint.get("feature_params", {}))
    if differ:
        store = "encoded.h5" if "weights_sha256" in store_attrs else "features.h5"
        problems.append(f"feature params differ from {store} (file vs model: {differ})")
    if problems:
        raise EvaluateError(f"{path}: checkpoint does not match this cell: "
                            + "; ".join(problems) + ". Re-run its train stage.")


def cell_probabilities(model_dir: str | Path, subset: str, table: pd.DataFrame,
                       feature_set: FeatureSet, params: Params, side: str = "test",
                       progress: bool = True, log=print) -> tuple[pd.DataFrame, str]:
    """Every fold model of `model_dir` scored on its fold's `side` actors ("test", or
    "validation": held out under `train.monitor: ua | loss`, where a setting such as a
    fusion weight is chosen). One row per utterance: `PREDICTION_COLUMNS` (`predicted`, the
    most probable class), `path`, and one column of probability per class, named by the
    class, in the checkpoint's class order. Also returns the protocol (`metrics.PROTOCOLS`)."""
    from .checkpoint import load_model, path_for
    from .inference import predict_proba

    if side not in ("test", "validation"):
        raise ValueError(f"side {side!r}: test | validation")
    model_dir = Path(model_dir)
    inputs.check(feature_set.attrs, params)           # features.h5 or encoded.h5
    table = subset_table(table, subset)
    folds = from_split(table["actor"], params.split, log=log)
    parts, adaptive = [], set()
    for fold in tqdm(folds, desc=f"evaluate {model_dir.name}", unit="fold", disable=not progress):
        path = path_for(model_dir, fold.number)
        if not path.is_file():
            raise EvaluateError(f"{path}: no checkpoint for {fold.name}; run the train stage "
                                f"of {model_dir.name}")
        model, checkpoint = load_model(path)
        check_checkpoint(checkpoint, path, fold, subset, feature_set.attrs)
        scored = table.iloc[getattr(split_rows(table, fold), side)]   # never a training actor
        assert set(scored["actor"]) <= set(getattr(fold, f"{side}_actors"))
        if side == "validation" and checkpoint.get("monitor", "none") == "none":
            raise EvaluateError(f"{path}: trained under train.monitor: none, so its validation "
                                "actors trained it; scoring them would not hold anything out")
        features = feature_set.features[feature_set.rows(scored["path"])]  # (n, F, T)
        # under train.speaker_norm, each scored actor is standardised by the statistics of its
        # own utterances (unlabelled audio: speaker-adaptive), never the labels
        probabilities = np.asarray(predict_proba(model, checkpoint, features,
                                                 shifts=params.evaluate.shifts,
                                                 speakers=scored["actor"].to_numpy()))  # (n, C)
        adaptive.add("speaker" in checkpoint["normalisation"])
        labels = list(checkpoint["labels"])
        parts.append(pd.DataFrame({
            "fold": fold.number,
            "actor": scored["actor"].to_numpy(),
            "intensity_name": scored["intensity_name"].to_numpy(),
            "actual": scored["emotion_name"].to_numpy(),
            "predicted": [labels[i] for i in probabilities.argmax(axis=1)],
            "path": scored["path"].to_numpy(),
            **{label: probabilities[:, i] for i, label in enumerate(labels)},
        }))
    return pd.concat(parts, ignore_index=True), PROTOCOLS[adaptive == {True}]


def evaluate_cell(model_dir: str | Path, subset: str, table: pd.DataFrame,
                  feature_set: FeatureSet, params: Params, progress: bool = True,
                  log=print) -> CellScores:
    """Score every fold model of `model_dir` on its fold's test actors only."""
    predictions, protocol = cell_probabilities(model_dir, subset, table, feature_set, params,
                                               "test", progress, log)
    scores = metrics.summarise(predictions, SUBSETS[subset], subset)
    scores["protocol"] = protocol
    return CellScores(scores, metrics.confusion_records(predictions), predictions)

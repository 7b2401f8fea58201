"""Scikit-learn figures and the metrics JSON schema, shared by the classifiers and the
VAE probes so that one table holds everything.

The three headline figures of speech-emotion work:
- `ua`, unweighted accuracy: the mean of the per-class recalls (balanced accuracy),
- `wa`, weighted accuracy: the plain fraction of utterances right (accuracy),
- `macro_f1`: the unweighted mean of the per-class F1 scores.

`metrics/<name>.json` (values rounded to 4 decimals):

    {"ua", "wa", "macro_f1": mean over the folds that ran,
     "ua_sd": sample standard deviation of the fold UAs (null with one fold),
     "n_folds", "n_utterances",
     "folds":   {"fold1": {"ua", "wa", "macro_f1", "n_utterances", "test_actors"}, ...},
     "classes": {"neutral": {"recall", "precision", "f1", "support"}, ...},
     "by_intensity": {"strong": {"ua", "wa", "macro_f1", "n_utterances"}, "normal": {...}},
     "by_gender":    {"male": {...}, "female": {...}},
     "protocol": "utterance-only" | "speaker-adaptive" (classifiers: whether each test
                 actor's own unlabelled utterances standardised that actor)}

`classes`, `by_intensity` and `by_gender` pool the test utterances of every fold (each
utterance is a test utterance in exactly one fold); `by_*` appear for the `all` subset
only. A figure that is undefined (the recall of a class with no test utterance) is null.

Everything here is computed from predictions on a fold's test actors only: the callers
(`evaluate`, the VAE probes) never pass an utterance its model trained on.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_fscore_support,
)

from .ravdess import GENDERS, INTENSITIES, gender

# How much of the test speaker a score knows (`train.speaker_norm`), indexed by "adaptive":
# utterance-only, nothing known of the speaker (predict on one file); speaker-adaptive,
# the speaker's own unlabelled recordings standardise it. Never mixed in one table row.
PROTOCOLS = ("utterance-only", "speaker-adaptive")

DECIMALS = 4
FIGURES = ("ua", "wa", "macro_f1")
# Columns of the predictions table that `summarise` reads; one row per test utterance.
PREDICTION_COLUMNS = ("fold", "actor", "intensity_name", "actual", "predicted")
# strong, normal
INTENSITY_ORDER = tuple(INTENSITIES[code] for code in sorted(INTENSITIES, reverse=True))


class MetricsError(ValueError):
    """Predictions that cannot be scored; the message says what is wrong."""


def figures(actual: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """UA, WA and macro-F1 of one set of predictions (unrounded).

    Macro-F1 averages over the classes that occur in `actual` or `predicted` (what
    scikit-learn does by default); UA over the classes that occur in `actual`.
    """
    actual, predicted = _check(actual, predicted)
    with warnings.catch_warnings():
        # Expected on small groups (one gender, one fold): a model predicting a class none
        # of the test utterances has, or a group with a single class. The figures stay
        # well defined as documented above.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        return {
            "ua": float(balanced_accuracy_score(actual, predicted)),
            "wa": float(accuracy_score(actual, predicted)),
            "macro_f1": float(f1_score(actual, predicted, average="macro", zero_division=0)),
        }


def class_figures(actual: Sequence[str], predicted: Sequence[str],
                  labels: Sequence[str]) -> dict[str, dict[str, float | int | None]]:
    """Recall, precision, F1 and support of every class in `labels`, in that order.

    Recall is null for a class with no utterance in `actual`, precision is null for a
    class never predicted, F1 is null when both are.
    """
    actual, predicted = _check(actual, predicted)
    unknown = sorted((set(actual) | set(predicted)) - set(labels))
    if unknown:
        raise MetricsError(f"labels {unknown} are not among the classes {list(labels)}")
    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=list(labels), zero_division=np.nan)
    return {
        label: {"recall": _value(recall[i]), "precision": _value(precision[i]),
                "f1": _value(f1[i]), "support": int(support[i])}
        for i, label in enumerate(labels)
    }


def summarise(predictions: pd.DataFrame, labels: Sequence[str], subset: str) -> dict[str, Any]:
    """The metrics dict of one cell from the test predictions of all its folds.

    `predictions` has one row per test utterance with the columns `PREDICTION_COLUMNS`:
    `fold` (number), `actor`, `intensity_name`, `actual` and `predicted` (class names).
    `labels` are the model's classes in class order; `subset` is the intensity subset
    (`all` adds the intensity and gender breakdowns). The result is rounded, ready for
    `speech_emotion.atomic.write_json`.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise MetricsError(f"predictions lack the column(s) {missing}")
    if predictions.empty:
        raise MetricsError("no test predictions to score")
    per_fold = {}
    for number, rows in predictions.groupby("fold", sort=True):
        per_fold[f"fold{int(number)}"] = {
            **figures(rows["actual"], rows["predicted"]),
            "n_utterances": len(rows),
            "test_actors": sorted(int(a) for a in rows["actor"].unique()),
        }
    fold_uas = [fold["ua"] for fold in per_fold.values()]
    result: dict[str, Any] = {
        name: statistics.fmean(fold[name] for fold in per_fold.values()) for name in FIGURES
    }
    result["ua_sd"] = statistics.stdev(fold_uas) if len(fold_uas) > 1 else None
    result["n_folds"] = len(per_fold)
    result["n_utterances"] = len(predictions)
    result["folds"] = per_fold
    result["classes"] = class_figures(predictions["actual"], predictions["predicted"], labels)
    if subset == "all":
        result["by_intensity"] = _breakdown(predictions, predictions["intensity_name"],
                                            INTENSITY_ORDER)
        genders = predictions["actor"].map(lambda actor: gender(int(actor)))
        result["by_gender"] = _breakdown(predictions, genders, GENDERS)
    return rounded(result)



def summarise_corpus(predictions: pd.DataFrame, labels: Sequence[str]) -> dict[str, Any]:
    """The metrics dict of one cell on an external corpus (`speech_emotion.external`): one
    prediction per utterance (the fold models averaged), so the figures are pooled over the
    corpus, with no folds and no standard deviation.

    `predictions` has the columns `speaker`, `actual` and `predicted`; `labels` are the
    classes scored (those the model and the corpus share). `by_speaker` as `by_gender`
    above, one entry per speaker in sorted order, left out when no speaker is known (every
    `speaker` empty). Rounded, ready for `speech_emotion.atomic.write_json`.
    """
    missing = [c for c in ("speaker", "actual", "predicted") if c not in predictions.columns]
    if missing:
        raise MetricsError(f"predictions lack the column(s) {missing}")
    result: dict[str, Any] = {**figures(predictions["actual"], predictions["predicted"]),
                              "n_utterances": len(predictions)}
    result["classes"] = class_figures(predictions["actual"], predictions["predicted"], labels)
    speakers = predictions["speaker"].astype(str)
    if (speakers != "").any():
        result["by_speaker"] = _breakdown(predictions, speakers, sorted(speakers.unique()))
    return rounded(result)

def confusion_records(predictions: pd.DataFrame) -> list[dict[str, str]]:
    """One `{actual, predicted}` record per test utterance, for DVC's confusion template."""
    return [{"actual": str(a), "predicted": str(p)}
            for a, p in zip(predictions["actual"], predictions["predicted"], strict=True)]


def rounded(value: Any, decimals: int = DECIMALS) -> Any:
    """`value` with every float rounded (recursively through dicts and lists); NaN -> null."""
    if isinstance(value, dict):
        return {key: rounded(item, decimals) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, decimals) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), decimals)
    return value


def _breakdown(predictions: pd.DataFrame, groups: pd.Series,
               names: Iterable[str]) -> dict[str, dict[str, float]]:
    """The three figures on each group of utterances (pooled over folds); absent groups left out."""
    out = {}
    for name in names:
        rows = predictions[groups.to_numpy() == name]
        if len(rows):
            out[name] = {**figures(rows["actual"], rows["predicted"]), "n_utterances": len(rows)}
    return out


def _check(actual: Sequence[str], predicted: Sequence[str]) -> tuple[list[str], list[str]]:
    actual, predicted = [str(a) for a in actual], [str(p) for p in predicted]
    if len(actual) != len(predicted):
        raise MetricsError(f"{len(actual)} actual labels but {len(predicted)} predictions")
    if not actual:
        raise MetricsError("no utterances to score")
    return actual, predicted


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)

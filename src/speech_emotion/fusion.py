"""Late fusion: a head's and a log-mel model's class probabilities, averaged.

The two see the same utterance through different inputs (the pretrained encoder's states,
the log-mel spectrogram), so their errors differ in part and their weighted mean
    p = w * p_head + (1 - w) * p_model
can beat both. Both members are scored on the same folds' test actors (`evaluate`'s
predictions, one column of probability per class); `fuse` checks they are the same
utterances under the same folds and classes before it averages anything.

The weight `w` is a param (`fusion.head_weight`). It is chosen on validation actors:
`weight_scores` gives each candidate's UA on each fold's held-out validation actors
(members trained under `train.monitor: ua | loss`), and `choose_weights` the best one per
fold, so a fold's weight never sees its test actors (benchmarks/fusion.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic
from .metrics import PREDICTION_COLUMNS, PROTOCOLS, figures

KEYS = ("fold", "path")                 # one utterance of one fold
DECIMALS = 6                            # of the probabilities written: the same bits, the same file


class FusionError(ValueError):
    """Members that cannot be fused: other utterances, folds or classes."""


def write_predictions(path: str | Path, predictions: pd.DataFrame) -> None:
    """`evaluate.cell_probabilities`'s frame as CSV, the probabilities rounded."""
    atomic.write_csv(path, predictions.round(DECIMALS))


def read_predictions(path: str | Path, labels: Sequence[str]) -> pd.DataFrame:
    """A predictions CSV of `write_predictions`, with a probability column per class of
    `labels`; an error names the file and what is wrong with it."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise FusionError(f"{path}: no predictions; run the evaluate stage of this cell") from None
    except (OSError, ValueError) as err:             # pandas' parser errors are ValueErrors
        raise FusionError(f"{path}: not a readable predictions CSV ({err})") from None
    missing = [c for c in (*PREDICTION_COLUMNS, "path", *labels) if c not in frame.columns]
    if missing:
        raise FusionError(f"{path}: lacks the column(s) {missing}; re-run its evaluate stage")
    p = frame[list(labels)]
    if not np.isfinite(p.to_numpy(float)).all() or ((p < 0) | (p > 1)).any().any():
        raise FusionError(f"{path}: a class probability that is missing or outside [0, 1]")
    return frame


def fuse(head: pd.DataFrame, model: pd.DataFrame, labels: Sequence[str],
         head_weight: float | dict[int, float]) -> pd.DataFrame:
    """The members' predictions (`evaluate.cell_probabilities`: `PREDICTION_COLUMNS`, path
    and one probability column per class of `labels`) fused: each class's probability is
    `w * head + (1 - w) * model`, `predicted` its most probable class. `head_weight` is one
    weight, or one per fold. Rows in `head`'s order."""
    for name, frame in (("head", head), ("model", model)):
        missing = [c for c in (*PREDICTION_COLUMNS, "path", *labels) if c not in frame.columns]
        if missing:
            raise FusionError(f"the {name}'s predictions lack the column(s) {missing}")
    keys = lambda f: list(zip(f["fold"].astype(int), f["path"], strict=True))  # noqa: E731
    if sorted(keys(head)) != sorted(keys(model)):
        only = sorted(set(keys(head)) ^ set(keys(model)))
        raise FusionError(f"the members scored other utterances or folds ({len(only)} differ, "
                          f"e.g. fold {only[0][0]}, {only[0][1]}): train and evaluate both "
                          "under the same split and data")
    other = model.set_index(list(KEYS)).loc[pd.MultiIndex.from_frame(head[list(KEYS)])]
    if list(other["actual"]) != list(head["actual"]):
        raise FusionError("the members disagree on the emotion of an utterance")
    w = _per_row(head["fold"], head_weight)
    p = (w[:, None] * head[list(labels)].to_numpy(float)
         + (1 - w[:, None]) * other[list(labels)].to_numpy(float))           # (n, C)
    fused = head[[*PREDICTION_COLUMNS, "path"]].copy()
    fused["predicted"] = [labels[i] for i in p.argmax(axis=1)]
    for i, label in enumerate(labels):
        fused[label] = p[:, i]
    return fused


def _per_row(folds: pd.Series, weight: float | dict[int, float]) -> np.ndarray:
    if isinstance(weight, dict):
        missing = sorted(set(folds.astype(int)) - set(weight))
        if missing:
            raise FusionError(f"no head weight for fold(s) {missing}")
        w = folds.astype(int).map(weight).to_numpy(float)
    else:
        w = np.full(len(folds), float(weight))
    if ((w < 0) | (w > 1)).any():
        raise FusionError(f"a head weight outside [0, 1]: {sorted(set(w))}")
    return w


def weight_scores(head: pd.DataFrame, model: pd.DataFrame, labels: Sequence[str],
                  weights: Sequence[float]) -> pd.DataFrame:
    """UA of every fold under every candidate weight (one row per fold and weight) of the
    fused predictions of `head` and `model` (on validation actors, to choose a weight)."""
    rows = []
    for w in weights:
        fused = fuse(head, model, labels, w)
        for fold, part in fused.groupby("fold", sort=True):
            rows.append({"fold": int(fold), "head_weight": float(w),
                         "ua": figures(part["actual"], part["predicted"])["ua"]})
    return pd.DataFrame(rows)


def choose_weights(scores: pd.DataFrame) -> dict[int, float]:
    """Each fold's best weight of `weight_scores`: the highest UA, ties to the weight
    nearest an equal mix (0.5), then the lower weight."""
    chosen = {}
    for fold, part in scores.groupby("fold", sort=True):
        best = part.assign(gap=(part["head_weight"] - 0.5).abs()).sort_values(
            ["ua", "gap", "head_weight"], ascending=[False, True, True])
        chosen[int(fold)] = float(best["head_weight"].iloc[0])
    return chosen


def read_protocol(path: str | Path) -> str:
    """The protocol a member's metrics file (`metrics/<cell>.json`) records."""
    import json

    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))["protocol"]
    except FileNotFoundError:
        raise FusionError(f"{path}: no metrics; run the evaluate stage of this cell") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FusionError(f"{path}: not a metrics file with a protocol ({err!r})") from None
    if found not in PROTOCOLS:
        raise FusionError(f"{path}: unknown protocol {found!r}")
    return found


def protocol(*members: str) -> str:
    """A fusion is speaker-adaptive when any member is."""
    unknown = set(members) - set(PROTOCOLS)
    if unknown:
        raise FusionError(f"unknown protocol(s) {sorted(unknown)}")
    return PROTOCOLS[PROTOCOLS[1] in members]

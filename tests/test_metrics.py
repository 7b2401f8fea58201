"""Metric values against hand-computed cases, the JSON schema and the confusion records."""

import json

import pandas as pd
import pytest

from speech_emotion import metrics
from speech_emotion.metrics import MetricsError

# Three classes, six utterances. By hand:
#   recall     a 2/3, b 1/2, c 1    -> UA = (2/3 + 1/2 + 1) / 3 = 13/18
#   precision  a 1,   b 1/2, c 1/2
#   F1         a 4/5, b 1/2, c 2/3  -> macro-F1 = (4/5 + 1/2 + 2/3) / 3 = 59/90
#   WA = 4/6
ACTUAL = ["a", "a", "a", "b", "b", "c"]
PREDICTED = ["a", "a", "b", "b", "c", "c"]


def test_figures_match_hand_computation():
    got = metrics.figures(ACTUAL, PREDICTED)
    assert got["ua"] == pytest.approx(13 / 18)
    assert got["wa"] == pytest.approx(4 / 6)
    assert got["macro_f1"] == pytest.approx(59 / 90)


def test_ua_differs_from_wa_on_imbalanced_classes():
    # Always predicting the majority class: WA 0.9, but UA only 0.5.
    actual = ["a"] * 9 + ["b"]
    got = metrics.figures(actual, ["a"] * 10)
    assert got["wa"] == pytest.approx(0.9)
    assert got["ua"] == pytest.approx(0.5)


def test_class_figures_by_hand_and_undefined_values_are_null():
    got = metrics.class_figures(ACTUAL, PREDICTED, ["a", "b", "c", "d"])
    assert list(got) == ["a", "b", "c", "d"]
    assert got["a"] == pytest.approx({"recall": 2 / 3, "precision": 1.0, "f1": 0.8, "support": 3})
    assert got["b"] == pytest.approx({"recall": 0.5, "precision": 0.5, "f1": 0.5, "support": 2})
    assert got["c"] == pytest.approx({"recall": 1.0, "precision": 0.5, "f1": 2 / 3, "support": 1})
    # "d" has no test utterance and is never predicted: nothing about it is defined.
    assert got["d"] == {"recall": None, "precision": None, "f1": None, "support": 0}


def test_class_figures_refuse_unknown_labels():
    with pytest.raises(MetricsError, match=r"\['z'\]"):
        metrics.class_figures(["a", "z"], ["a", "a"], ["a", "b"])


@pytest.mark.parametrize("actual, predicted, message", [
    (["a", "b"], ["a"], "2 actual labels but 1 predictions"),
    ([], [], "no utterances"),
])
def test_figures_refuse_bad_input(actual, predicted, message):
    with pytest.raises(MetricsError, match=message):
        metrics.figures(actual, predicted)


def _predictions():
    """Two folds. Fold 1: actors 1 (male) and 2 (female); fold 2: actor 3 (male)."""
    rows = [
        # fold, actor, intensity, actual, predicted
        (1, 1, "normal", "a", "a"),
        (1, 1, "strong", "a", "b"),
        (1, 2, "normal", "b", "b"),
        (1, 2, "strong", "b", "b"),
        (2, 3, "normal", "a", "a"),
        (2, 3, "strong", "b", "a"),
    ]
    return pd.DataFrame(rows, columns=list(metrics.PREDICTION_COLUMNS))


def test_summarise_fold_means_sd_and_breakdowns():
    got = metrics.summarise(_predictions(), ["a", "b"], subset="all")
    # Fold 1: recall a 1/2, b 1 -> UA 3/4, WA 3/4; F1 a 2/3, b 4/5 -> macro 11/15.
    # Fold 2: recall a 1, b 0 -> UA 1/2, WA 1/2; F1 a 2/3, b 0 -> macro 1/3.
    f1, f2 = got["folds"]["fold1"], got["folds"]["fold2"]
    assert (f1["ua"], f1["wa"], f1["macro_f1"]) == (0.75, 0.75, round(11 / 15, 4))
    assert (f2["ua"], f2["wa"], f2["macro_f1"]) == (0.5, 0.5, round(1 / 3, 4))
    assert f1["test_actors"] == [1, 2] and f2["test_actors"] == [3]
    assert (f1["n_utterances"], f2["n_utterances"]) == (4, 2)
    assert got["ua"] == 0.625 and got["wa"] == 0.625
    assert got["macro_f1"] == round((11 / 15 + 1 / 3) / 2, 4)
    # Sample standard deviation of (0.75, 0.5).
    assert got["ua_sd"] == round(0.25 / 2 ** 0.5, 4)
    assert got["n_folds"] == 2 and got["n_utterances"] == 6
    # Pooled per class: a recall 2/3 (support 3), precision 2/3; b recall 2/3, precision 2/3.
    assert got["classes"]["a"] == {"recall": 0.6667, "precision": 0.6667, "f1": 0.6667,
                                   "support": 3}
    # Strong: a->b, b->b, b->a: recall a 0, b 1/2 -> UA 1/4; WA 1/3.
    assert got["by_intensity"]["strong"]["ua"] == 0.25
    assert got["by_intensity"]["strong"]["wa"] == 0.3333
    # Normal: all three right.
    assert got["by_intensity"]["normal"] == {"ua": 1.0, "wa": 1.0, "macro_f1": 1.0,
                                             "n_utterances": 3}
    # Female (actor 2): both right. Male (actors 1, 3): a a, a b, a a, b a -> WA 1/2.
    assert got["by_gender"]["female"]["wa"] == 1.0
    assert got["by_gender"]["male"]["wa"] == 0.5
    assert list(got)[:7] == ["ua", "wa", "macro_f1", "ua_sd", "n_folds", "n_utterances", "folds"]


def test_summarise_breakdowns_only_for_subset_all_and_sd_null_with_one_fold():
    one_fold = _predictions().query("fold == 1")
    got = metrics.summarise(one_fold, ["a", "b"], subset="strong")
    assert "by_intensity" not in got and "by_gender" not in got
    assert got["ua_sd"] is None and got["n_folds"] == 1
    assert got["ua"] == got["folds"]["fold1"]["ua"]


def test_summarise_is_json_ready_and_rounded():
    got = metrics.summarise(_predictions(), ["a", "b"], subset="all")
    text = json.dumps(got, allow_nan=False)   # no NaN, no numpy types
    assert "0.6666666" not in text

    def floats(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from floats(value)
        elif isinstance(node, list):
            for value in node:
                yield from floats(value)
        elif isinstance(node, float):
            yield node

    assert all(round(x, 4) == x for x in floats(got))


def test_summarise_refuses_missing_columns_and_empty_input():
    with pytest.raises(MetricsError, match="intensity_name"):
        metrics.summarise(_predictions().drop(columns="intensity_name"), ["a", "b"], "all")
    with pytest.raises(MetricsError, match="no test predictions"):
        metrics.summarise(_predictions().iloc[:0], ["a", "b"], "all")


def test_confusion_records_one_per_utterance_with_names():
    records = metrics.confusion_records(_predictions())
    assert len(records) == 6
    assert records[1] == {"actual": "a", "predicted": "b"}
    assert all(set(r) == {"actual", "predicted"} for r in records)
    json.dumps(records)


def test_rounded_handles_nested_values_and_nan():
    import numpy as np
    got = metrics.rounded({"x": np.float32(0.123456), "y": [1 / 3, float("nan")],
                           "n": np.int64(3), "ok": np.bool_(True)})
    assert got == {"x": 0.1235, "y": [0.3333, None], "n": 3, "ok": True}
    assert type(got["n"]) is int

"""The aggregate results table over metrics/*.json."""

import json
from pathlib import Path

import pandas as pd
import pytest

from speech_emotion import metrics, report
from speech_emotion.report import ReportError


def _write_metrics(folder, name, folds, subset):
    """Write metrics/<name>.json from per-fold (actor, actual, predicted) triples."""
    rows = [(fold, actor, "normal", actual, predicted)
            for fold, triples in folds.items() for actor, actual, predicted in triples]
    table = pd.DataFrame(rows, columns=list(metrics.PREDICTION_COLUMNS))
    data = metrics.summarise(table, ["a", "b"], subset)
    (folder / f"{name}.json").write_text(json.dumps(data))
    return data


def test_table_rows_values_order_and_fold_actors(tmp_path):
    # cnn-strong: fold 1 all right (UA 1, F1 1), fold 2 a->a, b->a (UA 0.5; F1 a 2/3, b 0):
    # UA 75.0 +/- 35.4 (sample sd of 1 and 0.5), macro-F1 (1 + 1/3) / 2 = 66.7.
    _write_metrics(tmp_path, "cnn-strong", {
        1: [(1, "a", "a"), (2, "b", "b")],
        2: [(4, "a", "a"), (4, "b", "a")]}, "strong")
    # cnn_transformer-all, one fold: 3 of 4 right; F1 a 4/5, b 2/3 -> macro 73.3.
    _write_metrics(tmp_path, "cnn_transformer-all", {
        1: [(1, "a", "a"), (1, "b", "b"), (2, "a", "a"), (2, "b", "a")]}, "all")
    # cnn-all: a->b, b->b: UA 50, WA 50, F1 a 0, b 2/3 -> macro 33.3.
    _write_metrics(tmp_path, "cnn-all", {1: [(1, "a", "b"), (2, "b", "b")]}, "all")
    rows = report.read_rows(tmp_path)
    assert [r.name for r in rows] == ["cnn-all", "cnn-strong", "cnn_transformer-all"]
    text = report.markdown(rows)
    lines = text.splitlines()
    assert lines[0] == ("| model | subset | folds | UA (%) | WA (%) | macro-F1 (%) "
                        "| speaker probe (%) |")
    assert lines[2] == "| cnn | all | 1 | 50.0 | 50.0 | 33.3 | - |"
    assert lines[3] == "| cnn | strong | 1, 2 | 75.0 ± 35.4 | 75.0 | 66.7 | - |"
    assert lines[4] == "| cnn_transformer | all | 1 | 75.0 | 75.0 | 73.3 | - |"
    assert "fold 1: 01, 02" in text and "fold 2: 04" in text
    assert report.markdown(report.read_rows(tmp_path)) == text     # deterministic


def test_fold_ranges_and_differing_actor_sets(tmp_path):
    folds = {n: [(n, "a", "a"), (n, "b", "b")] for n in range(1, 7)}
    _write_metrics(tmp_path, "beta_vae-normal", folds, "normal")
    _write_metrics(tmp_path, "fhvae-normal", {1: [(9, "a", "a"), (9, "b", "b")]}, "normal")
    text = report.markdown(report.read_rows(tmp_path))
    assert "| beta_vae | normal | 1-6 | 100.0 ± 0.0 |" in text
    assert "fold 1: 01 / 09" in text


def test_representation_rows_show_the_speaker_probe(tmp_path):
    _write_metrics(tmp_path, "fhvae-all", {1: [(1, "a", "a"), (2, "b", "a")]}, "all")
    path = tmp_path / "fhvae-all.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "speaker_acc": 0.625}))
    text = report.markdown(report.read_rows(tmp_path))
    assert "| fhvae | all | 1 | 50.0 | 50.0 | 33.3 | 62.5 |" in text


def test_names_without_a_subset_are_kept_whole():
    assert report.split_name("cnn_transformer-strong") == ("cnn_transformer", "strong")
    assert report.split_name("logmel_stats") == ("logmel_stats", "")
    assert report.split_name("a-b-normal") == ("a-b", "normal")


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not a readable metrics file"),
    (json.dumps({"ua": 0.5}), "not in the metrics schema"),
    (json.dumps({"ua": "high", "ua_sd": None, "wa": 0.5, "macro_f1": 0.5, "folds": {}}),
     "not in the metrics schema"),
])
def test_malformed_metrics_name_the_file(tmp_path, content, problem):
    path = tmp_path / "cnn-all.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=f"cnn-all.json: {problem}"):
        report.read_rows(tmp_path)


def test_no_metrics_is_an_error(tmp_path):
    with pytest.raises(ReportError, match="no metrics files"):
        report.markdown(report.read_rows(tmp_path))


def test_only_the_cells_of_params_go_into_the_table(tmp_path):
    for name in ("cnn-all", "cnn_transformer-all", "old_model-all"):   # old_model: dropped
        _write_metrics(tmp_path, name, {1: [(1, "a", "a"), (2, "b", "b")]}, "all")
    rows = report.read_rows(tmp_path, ["cnn-all", "cnn_transformer-all"])
    assert [r.name for r in rows] == ["cnn-all", "cnn_transformer-all"]
    assert report.stale_files(tmp_path, ["cnn-all", "cnn_transformer-all"]) == [
        tmp_path / "old_model-all.json"]
    with pytest.raises(ReportError, match="cnn-strong.json: no metrics for this cell"):
        report.read_rows(tmp_path, ["cnn-all", "cnn-strong"])


def test_the_readme_default_table_is_the_committed_run():
    """The README's default-run table is reports/results.md of the run committed in
    dvc.lock, copied, never typed: a table that drifted from the lock fails here."""
    root = Path(__file__).resolve().parents[1]
    table = (root / "reports/results.md").read_text(encoding="utf-8").split("\n\n")[1]
    assert table.startswith("| model | subset | folds |")
    assert table in (root / "README.md").read_text(encoding="utf-8")

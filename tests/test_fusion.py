"""fusion: two members' probabilities averaged only when they scored the same utterances
under the same folds; each fold's weight chosen on its validation rows alone; and the
fuse stage's CSVs read back with a clear error when they are not predictions."""

import numpy as np
import pandas as pd
import pytest

from speech_emotion import fusion, params
from speech_emotion.fusion import FusionError

LABELS = ["neutral", "happy", "sad"]


def member(probabilities, actual, folds=None):
    """A predictions frame of `probabilities` (n, 3) for utterances u0, u1, ..."""
    p = np.asarray(probabilities, dtype=float)
    n = len(p)
    return pd.DataFrame({
        "fold": folds if folds is not None else [1] * n,
        "actor": [1 + i % 2 for i in range(n)],
        "intensity_name": ["normal"] * n,
        "actual": actual,
        "predicted": [LABELS[i] for i in p.argmax(1)],
        "path": [f"u{i}.wav" for i in range(n)],
        **{label: p[:, i] for i, label in enumerate(LABELS)},
    })


def test_the_weighted_mean_decides_and_rows_are_matched_by_path():
    head = member([[0.6, 0.4, 0.0], [0.1, 0.2, 0.7]], ["happy", "sad"])
    model = member([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], ["happy", "sad"])
    shuffled = model.iloc[::-1].reset_index(drop=True)          # another row order
    out = fusion.fuse(head, shuffled, LABELS, 0.5)
    assert list(out["predicted"]) == ["happy", "sad"]            # the head alone: neutral
    np.testing.assert_allclose(out["happy"], [0.7, 0.1])
    assert list(fusion.fuse(head, model, LABELS, 1.0)["predicted"]) == ["neutral", "sad"]
    assert list(fusion.fuse(head, model, LABELS, {1: 0.0})["predicted"]) == ["happy", "sad"]


def test_refuses_members_of_other_utterances_folds_or_labels():
    head = member([[1, 0, 0], [0, 1, 0]], ["neutral", "happy"])
    with pytest.raises(FusionError, match="other utterances or folds"):
        fusion.fuse(head, member([[1, 0, 0]], ["neutral"]), LABELS, 0.5)
    with pytest.raises(FusionError, match="other utterances or folds"):
        fusion.fuse(head, member([[1, 0, 0], [0, 1, 0]], ["neutral", "happy"], [1, 2]),
                    LABELS, 0.5)
    with pytest.raises(FusionError, match="disagree on the emotion"):
        fusion.fuse(head, member([[1, 0, 0], [0, 1, 0]], ["neutral", "sad"]), LABELS, 0.5)
    with pytest.raises(FusionError, match=r"lack the column\(s\) \['sad'\]"):
        fusion.fuse(head.drop(columns="sad"), head, LABELS, 0.5)
    with pytest.raises(FusionError, match="no head weight for fold"):
        fusion.fuse(head, head, LABELS, {2: 0.5})
    with pytest.raises(FusionError, match="outside"):
        fusion.fuse(head, head, LABELS, 1.5)


def test_each_fold_chooses_its_own_weight_on_its_own_rows():
    """Fold 1's rows are right by the head alone, fold 2's by the model alone: each fold's
    choice follows its own rows; a tie goes to the weight nearest an equal mix."""
    head = member([[0.8, 0.2, 0], [0.8, 0.2, 0], [0.9, 0.1, 0], [0.9, 0.1, 0]],
                  ["neutral", "neutral", "happy", "happy"], [1, 1, 2, 2])
    model = member([[0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]],
                   ["neutral", "neutral", "happy", "happy"], [1, 1, 2, 2])
    scores = fusion.weight_scores(head, model, LABELS, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert len(scores) == 10
    chosen = fusion.choose_weights(scores)
    assert chosen[1] == 0.75                   # above 0.625 needed: 0.75 and 1 tie, 0.75 nearer 0.5
    assert chosen[2] == 0.5                    # up to 0.55 keeps happy; 0.5 nearest an equal mix


def test_protocol_is_speaker_adaptive_when_a_member_is():
    assert fusion.protocol("utterance-only", "utterance-only") == "utterance-only"
    assert fusion.protocol("speaker-adaptive", "utterance-only") == "speaker-adaptive"
    with pytest.raises(FusionError, match="unknown protocol"):
        fusion.protocol("transductive", "utterance-only")


def test_predictions_round_trip_and_bad_files_name_themselves(tmp_path):
    frame = member([[1 / 3, 1 / 3, 1 / 3], [0.2, 0.5, 0.3]], ["neutral", "happy"])
    path = tmp_path / "whisper_asp-all.csv"
    fusion.write_predictions(path, frame)
    back = fusion.read_predictions(path, LABELS)
    np.testing.assert_allclose(back[LABELS], frame[LABELS], atol=1e-6)
    fusion.write_predictions(tmp_path / "again.csv", frame)
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()
    with pytest.raises(FusionError, match="missing.csv: no predictions; run the evaluate"):
        fusion.read_predictions(tmp_path / "missing.csv", LABELS)
    (tmp_path / "cut.csv").write_text(path.read_text().replace(",sad", ",sadness"))
    with pytest.raises(FusionError, match=r"cut.csv: lacks the column\(s\) \['sad'\]"):
        fusion.read_predictions(tmp_path / "cut.csv", LABELS)
    frame.loc[0, "sad"] = 1.5
    fusion.write_predictions(tmp_path / "bad.csv", frame)
    with pytest.raises(FusionError, match="bad.csv: a class probability"):
        fusion.read_predictions(tmp_path / "bad.csv", LABELS)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FusionError, match="empty.csv: not a readable predictions CSV"):
        fusion.read_predictions(tmp_path / "empty.csv", LABELS)


def test_params_refuse_a_fusion_of_cells_that_do_not_run(tmp_path):
    from random_models import REPO

    fused = {"cells.fused_heads": ["whisper_asp"], "cells.fused_models": ["cnn"]}
    assert params.load(REPO / "params.yaml", fused).cells.fusions() == [("whisper_asp", "cnn")]
    with pytest.raises(params.ParamsError,
                       match=r"cells.fused_heads.*\['whisper_asp'\] not among cells.heads"):
        params.load(REPO / "params.yaml", {**fused, "cells.heads": ["whisper_mlp"]})
    with pytest.raises(params.ParamsError,
                       match=r"cells.fused_models.*\['cnn'\] not among cells.models"):
        params.load(REPO / "params.yaml", {**fused, "cells.models": ["cnn_transformer"]})
    with pytest.raises(params.ParamsError, match="a fusion needs a head and a log-mel model"):
        params.load(REPO / "params.yaml", {**fused, "cells.fused_models": []})
    with pytest.raises(params.ParamsError, match="fusion.head_weight"):
        params.load(REPO / "params.yaml", {"fusion.head_weight": 1.2})
    none = params.load(REPO / "params.yaml", {"cells.fused_heads": [], "cells.fused_models": []})
    assert none.cells.fusions() == []


def test_a_members_protocol_comes_from_its_metrics_file(tmp_path):
    good = tmp_path / "cnn-all.json"
    good.write_text('{"ua": 0.5, "protocol": "utterance-only"}')
    assert fusion.read_protocol(good) == "utterance-only"
    with pytest.raises(FusionError, match="missing.json: no metrics; run the evaluate"):
        fusion.read_protocol(tmp_path / "missing.json")
    (tmp_path / "old.json").write_text('{"ua": 0.5}')
    with pytest.raises(FusionError, match="old.json: not a metrics file with a protocol"):
        fusion.read_protocol(tmp_path / "old.json")
    (tmp_path / "odd.json").write_text('{"protocol": "transductive"}')
    with pytest.raises(FusionError, match="odd.json: unknown protocol"):
        fusion.read_protocol(tmp_path / "odd.json")

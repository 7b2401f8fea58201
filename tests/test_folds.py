"""Speaker-independent folds: no test actor and no twin ever reaches training or validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from speech_emotion import folds, normalisation, params, training
from speech_emotion.ravdess import ACTORS, EMOTIONS, SUBSETS, gender

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
MALES = [a for a in ACTORS if gender(a) == "male"]
FEMALES = [a for a in ACTORS if gender(a) == "female"]


def corpus(actors: list[int], twin_pairs: list[tuple[int, int]], per_actor: int = 16
           ) -> pd.DataFrame:
    """A data.csv-like table: `per_actor` utterances per actor, some of them identical audio."""
    rows = []
    for actor in actors:
        for i in range(per_actor):
            emotion = 1 + i % len(EMOTIONS)
            intensity = 1 if emotion == 1 else 1 + (i // len(EMOTIONS)) % 2
            rows.append({"actor": actor, "emotion": emotion, "intensity": intensity,
                         "emotion_name": EMOTIONS[emotion],
                         "intensity_name": {1: "normal", 2: "strong"}[intensity],
                         "md5": f"{actor:02d}-{i}"})
    table = pd.DataFrame(rows)
    for a, b in twin_pairs:                 # row b gets row a's audio
        table.loc[b % len(table), "md5"] = table.loc[a % len(table), "md5"]
    return table


actor_sets = st.tuples(
    st.lists(st.sampled_from(MALES), min_size=4, max_size=12, unique=True),
    st.lists(st.sampled_from(FEMALES), min_size=4, max_size=12, unique=True),
).map(lambda mf: sorted(mf[0] + mf[1]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actors=actor_sets,
       protocol=st.sampled_from(["emobox", "loso"]),
       chosen=st.lists(st.integers(1, 24), min_size=1, max_size=6, unique=True),
       subset=st.sampled_from(list(SUBSETS)),
       twin_pairs=st.lists(st.tuples(st.integers(0, 800), st.integers(0, 800)), max_size=12),
       validation=st.integers(2, 3), seed=st.integers(0, 10))
def test_no_test_actor_or_twin_leaks(actors, protocol, chosen, subset, twin_pairs, validation,
                                     seed):
    table = corpus(actors, twin_pairs)
    sub = table.iloc[folds.subset_rows(table, subset)].reset_index(drop=True)
    table_folds = folds.protocol_folds(protocol)
    wanted = [n for n in chosen if n in table_folds]
    present = set(sub["actor"])
    if not wanted or not any(set(table_folds[n]) & present for n in wanted):
        with pytest.raises(folds.FoldError):
            folds.make_folds(present, protocol, wanted or chosen, validation, seed,
                             log=lambda *a, **k: None)
        return
    made = folds.make_folds(present, protocol, wanted, validation, seed, log=lambda *a, **k: None)
    assert [f.number for f in made] == [n for n in wanted if set(table_folds[n]) & present]
    for fold in made:
        test, val, train = map(set, (fold.test_actors, fold.validation_actors, fold.train_actors))
        assert test == set(table_folds[fold.number]) & present        # the published actors
        assert not (test & val or test & train or val & train)
        assert test | val | train == present
        assert {gender(a) for a in val} == {"male", "female"}
        sides = folds.split_rows(sub, fold)
        actor, md5 = sub["actor"].to_numpy(), sub["md5"].to_numpy()
        assert set(actor[sides.test]) <= test
        assert set(actor[sides.validation]) <= val
        assert set(actor[sides.train]) <= train
        assert not set(md5[sides.train]) & set(md5[sides.test])       # no twin straddles
        assert not set(md5[sides.train]) & set(md5[sides.validation])
        assert not set(md5[sides.validation]) & set(md5[sides.test])
        assert len(sides.test) == int(np.isin(actor, list(test)).sum())  # test keeps all rows


def test_subset_rows_pick_one_intensity():
    table = corpus(list(range(1, 9)), [])
    for subset, intensity in (("strong", "strong"), ("normal", "normal")):
        rows = folds.subset_rows(table, subset)
        assert set(table["intensity_name"].iloc[rows]) == {intensity}
    assert len(folds.subset_rows(table, "all")) == len(table)
    with pytest.raises(ValueError, match="unknown subset"):
        folds.subset_rows(table, "loud")


def test_subset_table_is_the_subset_rows_renumbered():
    table = corpus(list(range(1, 9)), [])
    strong = folds.subset_table(table, "strong")
    assert strong.index.tolist() == list(range(len(strong)))
    assert strong.equals(table.iloc[folds.subset_rows(table, "strong")].reset_index(drop=True))


def test_from_split_runs_the_folds_of_the_split_params():
    split = params.load(PARAMS, overrides={"split.folds": [1, 2], "split.seed": 3}).split
    actors = pd.Series([a for a in range(1, 13) for _ in range(3)])   # repeats, as a column
    quiet = {"log": lambda *a, **k: None}
    assert folds.from_split(actors, split, **quiet) == folds.make_folds(
        range(1, 13), "emobox", [1, 2], split.validation_actors, 3, **quiet)


@pytest.mark.parametrize("monitor", ["ua", "none"])
def test_train_cell_never_hands_test_actors_to_the_loop(monkeypatch, monitor):
    """Every feature value is its actor's number: the loop must never see a test actor's.
    With `train.monitor: none` the validation actors train too and nothing is held out."""
    table = corpus(list(range(1, 25)), [(0, 30), (5, 200)], per_actor=16)
    features = np.repeat(table["actor"].to_numpy(np.float32), 4 * 5).reshape(-1, 4, 5)
    # in this process (train.workers 1): the fake below records what it is handed
    p = params.load(PARAMS, overrides={"split.folds": [1, 2], "train.monitor": monitor,
                                       "train.workers": 1})
    seen = []

    def fake_train_fold(name, config, train, data, labels, **kwargs):
        seen.append(data)
        return {"state_dict": {}, "normalisation": normalisation.fit_normalisation(data.x_train),
                "best_epoch": 1, "best": {"loss": 1.0, "ua": 0.5, "wa": 0.5}, "history": [{}],
                "parameters": 0, "seconds_per_epoch": 0.0}

    monkeypatch.setattr(training, "train_fold", fake_train_fold)
    saved = {}
    training.train_cell("cnn", "all", p, table, features, {"kind": "logmel"},
                        save=lambda k, c: saved.__setitem__(k, c), progress=False,
                        log=lambda *a, **k: None)
    assert sorted(saved) == [1, 2] and len(seen) == 2
    for data, k in zip(seen, (1, 2), strict=True):
        fold = saved[k]["fold"]
        test = set(folds.EMOBOX_FOLDS[k])
        assert set(fold["test_actors"]) == test
        touched = set(np.unique(data.x_train)) | set(np.unique(data.x_val))
        assert not touched & test
        if monitor == "none":
            assert len(data.x_val) == 0
            assert set(np.unique(data.x_train)) == set(fold["train_actors"]) | set(
                fold["validation_actors"])
        else:
            assert set(np.unique(data.x_val)) == set(fold["validation_actors"])
            assert set(np.unique(data.x_train)) == set(fold["train_actors"])
        assert saved[k]["monitor"] == monitor
        assert saved[k]["labels"] == list(SUBSETS["all"])


def test_an_ensemble_trains_each_member_as_its_seed_alone_would(monkeypatch):
    """train.ensemble 3: member m of fold k gets the seed that train.seed + m gives a single
    model, every member sees the same rows, and the checkpoint lists all three."""
    table = corpus(list(range(1, 25)), [], per_actor=16)
    features = np.repeat(table["actor"].to_numpy(np.float32), 4 * 5).reshape(-1, 4, 5)
    calls = []

    def fake_train_fold(name, config, train, data, labels, *, seed, **kwargs):
        calls.append((seed, data))
        return {"state_dict": {"seed": seed},
                "normalisation": normalisation.fit_normalisation(data.x_train),
                "best_epoch": seed % 7, "best": {}, "history": [{}],
                "parameters": 0, "seconds_per_epoch": 0.0}

    monkeypatch.setattr(training, "train_fold", fake_train_fold)

    def run(**overrides):
        calls.clear()
        p = params.load(PARAMS, overrides={"split.folds": [2, 5], "train.workers": 1,
                                           **overrides})
        saved = {}
        summaries = training.train_cell("cnn", "all", p, table, features, {"kind": "logmel"},
                                        save=lambda k, c: saved.__setitem__(k, c),
                                        progress=False, log=lambda *a, **k: None)
        return saved, summaries, list(calls)

    single, single_summaries, _ = run(**{"train.seed": 4})
    assert single[2]["state_dict"] == {"seed": 4002}                 # a dict, not a list
    assert [s.get("member") for s in single_summaries] == [None, None]
    saved, summaries, calls3 = run(**{"train.seed": 4, "train.ensemble": 3})
    for k in (2, 5):
        assert saved[k]["state_dict"] == [{"seed": s * 1000 + k} for s in (4, 5, 6)]
        assert saved[k]["best_epoch"] == [(s * 1000 + k) % 7 for s in (4, 5, 6)]
    assert [(s["fold"], s["member"]) for s in summaries] == [(2, 1), (2, 2), (2, 3),
                                                            (5, 1), (5, 2), (5, 3)]
    same_rows = [data.x_train for seed, data in calls3 if seed % 1000 == 2]
    assert len(same_rows) == 3 and all(np.array_equal(same_rows[0], x) for x in same_rows)
    with pytest.raises(params.ParamsError, match=r"train\.ensemble = 0, must be >= 1"):
        params.load(PARAMS, overrides={"train.ensemble": 0})

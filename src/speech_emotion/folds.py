"""Speaker-independent folds: the one home of the fold lists.

A fold's test actors are never seen in training: not by the weights, not by the
normalisation statistics, not by augmentation, not by early stopping or checkpoint
choice. Early stopping (`train.monitor: ua | loss`) uses a validation group taken from
the training actors (at least one male and one female); under `train.monitor: none` that
group trains too. Utterances with identical audio ("twins", same `md5`
in data.csv) never sit on both sides of a split.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .ravdess import ACTORS, GENDERS, SUBSET_INTENSITY, SUBSETS, gender

if TYPE_CHECKING:                     # params imports the models (torch); folds needs neither
    from .params import SplitParams

# The published EmoBox 6-fold speaker-independent RAVDESS protocol (4 test actors a fold).
EMOBOX_FOLDS: dict[int, tuple[int, ...]] = {
    1: (1, 11, 20, 21),
    2: (4, 10, 12, 14),
    3: (8, 9, 19, 23),
    4: (3, 5, 7, 24),
    5: (2, 15, 16, 18),
    6: (6, 13, 17, 22),
}


@dataclass(frozen=True)
class Fold:
    number: int
    test_actors: tuple[int, ...]
    validation_actors: tuple[int, ...]
    train_actors: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"fold{self.number}"


class FoldError(ValueError):
    pass


def protocol_folds(protocol: str) -> dict[int, tuple[int, ...]]:
    """Fold number -> test actors of the full 24-actor corpus."""
    if protocol == "emobox":
        return dict(EMOBOX_FOLDS)
    if protocol == "loso":
        return {actor: (actor,) for actor in ACTORS}
    raise FoldError(f"unknown split protocol {protocol!r} (emobox | loso)")


def make_folds(actors_present: Iterable[int], protocol: str, folds: list[int],
               validation_actors: int, seed: int, log=print) -> list[Fold]:
    """The folds that can run on the actors present.

    A fold whose test actors are all missing is skipped with a message; one with some
    missing runs on those present. The validation group is drawn (deterministically from
    `seed` and the fold number) from the training actors, with both genders in it.
    """
    present = sorted(set(int(a) for a in actors_present))
    table = protocol_folds(protocol)
    chosen = []
    for number in folds:
        if number not in table:
            raise FoldError(f"split.folds: no fold {number} in protocol {protocol!r} "
                            f"(folds {min(table)}-{max(table)})")
        test = tuple(a for a in table[number] if a in present)
        if not test:
            log(f"fold {number}: none of its test actors {list(table[number])} is in the data; "
                "skipped", file=sys.stderr)
            continue
        missing = sorted(set(table[number]) - set(test))
        if missing:
            log(f"fold {number}: test actors {missing} not in the data; "
                f"running on {list(test)}", file=sys.stderr)
        rest = [a for a in present if a not in test]
        validation = pick_validation(rest, validation_actors, seed * 1000 + number)
        train = tuple(a for a in rest if a not in validation)
        if not train:
            raise FoldError(f"fold {number}: no training actors left")
        chosen.append(Fold(number, test, validation, train))
    if not chosen:
        raise FoldError(f"none of the folds {folds} of protocol {protocol!r} has a test actor "
                        f"in the data (actors present: {present})")
    return chosen


def from_split(actors_present: Iterable[int], split: SplitParams, log=print) -> list[Fold]:
    """The folds that `params.split` runs on the actors present (`make_folds`)."""
    return make_folds(actors_present, split.protocol, split.folds, split.validation_actors,
                      split.seed, log=log)


def pick_validation(actors: list[int], count: int, seed: int) -> tuple[int, ...]:
    """`count` actors, alternating genders, drawn reproducibly from `actors`."""
    if count < 2:
        raise FoldError("split.validation_actors must be at least 2 (one male, one female)")
    rng = random.Random(seed)
    by_gender = {g: sorted(a for a in actors if gender(a) == g) for g in GENDERS}
    for pool in by_gender.values():
        rng.shuffle(pool)
    picked = []
    while len(picked) < count and any(by_gender.values()):
        for g in GENDERS:
            if by_gender[g] and len(picked) < count:
                picked.append(by_gender[g].pop())
    if len({gender(a) for a in picked}) < 2:
        raise FoldError(f"cannot pick a validation group of both genders from actors {actors}")
    if len(picked) >= len(actors):
        raise FoldError(f"validation group of {count} leaves no training actors in {actors}")
    return tuple(sorted(picked))


@dataclass(frozen=True)
class FoldRows:
    """Row positions (into the table given) of a fold's three sides."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_rows(table: pd.DataFrame, fold: Fold) -> FoldRows:
    """Row positions of the training, validation and test utterances of `fold`.

    Any utterance whose audio is identical (`md5`) to a test or validation utterance is
    dropped from the sides that come before it (test > validation > train), so twins
    never straddle a split.
    """
    actor = table["actor"].to_numpy()
    test = np.isin(actor, fold.test_actors)
    validation = np.isin(actor, fold.validation_actors)
    train = np.isin(actor, fold.train_actors)
    if "md5" in table:
        md5 = table["md5"].to_numpy()
        test_md5 = set(md5[test])
        validation &= ~np.isin(md5, list(test_md5))
        held = test_md5 | set(md5[validation])
        train &= ~np.isin(md5, list(held))
    return FoldRows(np.flatnonzero(train), np.flatnonzero(validation), np.flatnonzero(test))


def fold_record(fold: Fold) -> dict[str, Any]:
    """The fold as a checkpoint stores it (`fold`: number and the three actor lists)."""
    return {"number": fold.number, "test_actors": list(fold.test_actors),
            "validation_actors": list(fold.validation_actors),
            "train_actors": list(fold.train_actors)}


# ---------------------------------------------------------------- intensity subsets
def subset_rows(table: pd.DataFrame, subset: str) -> np.ndarray:
    """Row positions of the utterances of one intensity subset (`all`: every row)."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; known: {list(SUBSETS)}")
    intensity = SUBSET_INTENSITY[subset]
    if intensity is None:
        return np.arange(len(table))
    return np.flatnonzero(table["intensity_name"].to_numpy() == intensity)


def subset_table(table: pd.DataFrame, subset: str) -> pd.DataFrame:
    """The rows of data.csv in intensity subset `subset` (all | strong | normal), in order
    and renumbered: the rows a cell trains, represents and is scored on."""
    return table.iloc[subset_rows(table, subset)].reset_index(drop=True)

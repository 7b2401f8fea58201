"""Linear probes: how much emotion, and how much speaker, an utterance representation holds.

Emotion probe (the headline figures): a scikit-learn logistic regression on the
standardised representation, fitted on a fold's training actors (its training and
validation groups; twins removed by `folds.split_rows`) and scored on its test actors
only, with `speech_emotion.metrics`, so VAE probes and classifiers share one table.

Speaker probe: which of a fold's test actors said an utterance. The test actors are
the ones no VAE trained on, so this measures how much speaker identity the (unchanged)
representation exposes on unseen voices. The probe is fitted on the test actors'
utterances of repetition `probe.speaker_fit_repetition` and scored on the others
(minus any utterance whose audio is identical to a fitted one); its chance level is
1 / (number of test actors). It is a separate diagnostic: the emotion probe and the
VAEs never see a test actor's label.

A low speaker accuracy with a high emotion UA is the representation this line of work
is after.
"""

from __future__ import annotations

import statistics
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from . import metrics
from .figures import plt
from .folds import Fold, split_rows
from .latents import group_columns
from .ravdess import SUBSETS


class ProbeError(ValueError):
    """Latents that cannot be probed; the message says which and why."""


def make_probe(params: Any) -> Pipeline:
    """Standardise, then multinomial logistic regression (`probe` params)."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=params.C, max_iter=params.max_iter,
                           class_weight=None if params.class_weight == "none" else "balanced"),
    )


def _fit(probe: Pipeline, x: np.ndarray, y: np.ndarray) -> Pipeline:
    with warnings.catch_warnings():
        # A probe that has not fully converged at max_iter is still a valid linear probe.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return probe.fit(x, y)


def emotion_predictions(x: np.ndarray, table: pd.DataFrame, fold: Fold,
                        params: Any) -> pd.DataFrame:
    """Test-actor predictions of an emotion probe fitted on the training actors.

    `x` (N, D) and `table` are aligned rows of one subset. Returns the table that
    `metrics.summarise` reads (one row per test utterance).
    """
    sides = split_rows(table, fold)
    fit = np.sort(np.concatenate([sides.train, sides.validation]))
    if len(fit) == 0 or len(sides.test) == 0:
        raise ProbeError(f"fold {fold.number}: {len(fit)} training and {len(sides.test)} "
                         "test utterances; a probe needs both")
    emotion = table["emotion_name"].to_numpy()
    probe = _fit(make_probe(params), x[fit], emotion[fit])
    test = table.iloc[sides.test]
    return pd.DataFrame({
        "fold": fold.number,
        "actor": test["actor"].to_numpy(),
        "intensity_name": test["intensity_name"].to_numpy(),
        "actual": emotion[sides.test],
        "predicted": probe.predict(x[sides.test]),
    })


def speaker_probe(x: np.ndarray, table: pd.DataFrame, fold: Fold,
                  params: Any) -> dict[str, Any] | None:
    """Accuracy of telling the fold's test actors apart (see the module docstring).

    None when fewer than two test actors are present (nothing to tell apart).
    """
    test = split_rows(table, fold).test
    actor = table["actor"].to_numpy()
    if len(np.unique(actor[test])) < 2:
        return None
    repetition = table["repetition"].to_numpy()
    fit = test[repetition[test] == params.speaker_fit_repetition]
    score = test[repetition[test] != params.speaker_fit_repetition]
    if "md5" in table:
        md5 = table["md5"].to_numpy()
        score = score[~np.isin(md5[score], md5[fit])]
    if len(np.unique(actor[fit])) < 2 or len(score) == 0:
        return None
    probe = _fit(make_probe(params), x[fit], actor[fit])
    actors = np.unique(actor[test])
    return {"accuracy": float(np.mean(probe.predict(x[score]) == actor[score])),
            "chance": 1.0 / len(actors), "n_utterances": int(len(score)),
            "actors": [int(a) for a in actors]}


def probe_group(latents: dict[int, pd.DataFrame], columns: list[str], table: pd.DataFrame,
                folds: list[Fold], subset: str, params: Any) -> dict[str, Any]:
    """Emotion metrics (the shared schema) plus the speaker probe for one group of columns."""
    predictions, speaker = [], {}
    for fold in folds:
        x = latents[fold.number][columns].to_numpy(dtype=np.float64)
        predictions.append(emotion_predictions(x, table, fold, params))
        result = speaker_probe(x, table, fold, params)
        if result is not None:
            speaker[fold.name] = result
    summary = metrics.summarise(pd.concat(predictions, ignore_index=True),
                                list(SUBSETS[subset]), subset)
    accuracies = [s["accuracy"] for s in speaker.values()]
    summary["speaker_acc"] = statistics.fmean(accuracies) if accuracies else None
    summary["speaker_chance"] = (statistics.fmean(s["chance"] for s in speaker.values())
                                 if speaker else None)
    summary["speaker_folds"] = speaker
    return metrics.rounded(summary)


def probe_cell(latents: dict[int, pd.DataFrame], table: pd.DataFrame, folds: list[Fold],
               subset: str, params: Any) -> dict[str, Any]:
    """The metrics of one variant-subset cell.

    `latents` maps fold number -> that fold's latent table (aligned to `table`, checked).
    The top level is the first group's (the representation's) metrics in the shared
    schema plus `speaker_acc` / `speaker_chance`; `representation` names that group and
    `groups` gives every group's headline figures side by side (fhvae: z2 and z1).
    """
    for fold in folds:
        if fold.number not in latents:
            raise ProbeError(f"no latents for fold {fold.number}; re-run the represent stage")
        check_aligned(latents[fold.number], table, f"fold {fold.number}")
    groups = group_columns(latents[folds[0].number])
    # Small problems: one BLAS thread is quicker than several contending for 2 cores.
    with threadpool_limits(limits=1):
        results = {name: probe_group(latents, columns, table, folds, subset, params)
                   for name, columns in groups.items()}
    primary = next(iter(groups))
    headline = ("ua", "wa", "macro_f1", "ua_sd", "speaker_acc", "speaker_chance")
    return {**results[primary], "representation": primary,
            "dimensions": len(groups[primary]),
            "groups": {name: {"dimensions": len(groups[name]),
                              **{key: result[key] for key in headline}}
                       for name, result in results.items()}}


def check_aligned(latents: pd.DataFrame, table: pd.DataFrame, what: str) -> None:
    """The latent table must list exactly the table's utterances, in the same order."""
    if len(latents) != len(table) or not (latents["stem"].to_numpy()
                                          == table["stem"].to_numpy()).all():
        raise ProbeError(f"{what}: the latent table does not line up with data.csv "
                         f"({len(latents)} vs {len(table)} rows); re-run the represent stage")


# ---------------------------------------------------------------- pictures
def projection_figure(latents: pd.DataFrame, columns: list[str], table: pd.DataFrame,
                      fold: Fold, params: Any, title: str):
    """PCA (fitted on the training actors) and t-SNE of the utterance representations,
    coloured by emotion and by actor; test actors' utterances drawn as crosses."""
    x = StandardScaler().fit_transform(latents[columns].to_numpy(dtype=np.float64))
    sides = split_rows(table, fold)
    fit = np.sort(np.concatenate([sides.train, sides.validation]))
    pca = PCA(n_components=2, random_state=params.seed).fit(x[fit]).transform(x)
    perplexity = min(params.tsne_perplexity, (len(x) - 1) / 3)
    with threadpool_limits(1):   # BLAS threads spinning beside t-SNE made it 20x slower
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca",
                    random_state=params.seed).fit_transform(x)
    test = np.isin(table["actor"].to_numpy(), fold.test_actors)
    colourings = {"emotion": table["emotion_name"].to_numpy(),
                  "actor": table["actor"].to_numpy()}
    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    for col, (method, xy) in enumerate((("PCA", pca), ("t-SNE", tsne))):
        for row, (by, values) in enumerate(colourings.items()):
            ax = axes[row, col]
            names = list(dict.fromkeys(sorted(values, key=str)))
            cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20", max(len(names), 2))
            for i, name in enumerate(names):
                label = str(name)
                for mask, marker in ((~test, "o"), (test, "x")):
                    sel = (values == name) & mask
                    if sel.any():
                        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, marker=marker, color=cmap(i),
                                   label=label, alpha=0.7, linewidths=0.8)
                        label = None                             # one legend entry per name
            ax.set_title(f"{method}, coloured by {by}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.legend(fontsize=6, markerscale=1.5, ncol=2 if len(names) > 8 else 1,
                          loc="best", frameon=False)
    fig.suptitle(f"{title}: o training actors, x test actors {list(fold.test_actors)} "
                 f"(fold {fold.number})", fontsize=10)
    fig.tight_layout()
    return fig


def groups_figure(result: dict[str, Any], title: str):
    """Emotion UA and speaker accuracy of each latent group side by side (fhvae: z2, z1)."""
    groups = result["groups"]
    names = list(groups)
    figures = (("ua", "emotion UA (test actors)"),
               ("speaker_acc", "speaker accuracy (test actors)"))
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(names), 3.6))
    width = 0.38
    for k, (key, label) in enumerate(figures):
        values = [groups[name][key] if groups[name][key] is not None else np.nan
                  for name in names]
        bars = ax.bar(np.arange(len(names)) + (k - 0.5) * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    chance = result.get("speaker_chance")
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="speaker chance")
    ax.axhline(1 / len(result["classes"]), color="black", linestyle="--", linewidth=1,
               label="emotion chance")
    ax.set_xticks(np.arange(len(names)), [f"{n} ({groups[n]['dimensions']}-d)" for n in names])
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

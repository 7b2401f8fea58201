"""Representation learning: utterance representations from log-mel features, per fold.

For one fold of one intensity subset (`represent_fold`):
1. the VAE's utterances are the fold's training actors (training and validation groups,
   twins removed by `folds.split_rows`); the test actors' audio joins them only when
   `represent.transductive` is true, and their labels never do;
2. per-mel-bin normalisation statistics come from the training actors only;
3. every utterance (N, F, T) is cut into non-overlapping segments of `segment_frames`
   frames (the tail that does not fill a segment is dropped);
4. the VAE trains on the segments (`train`), then every utterance of the subset, test
   actors included, is encoded (`encode`) into its representation:
   - `beta_vae`: group `z`, the mean over segments of the posterior mean of z;
   - `fhvae`, `ss_fhvae`: group `z2`, the closed-form per-utterance mu2 (the paper's
     utterance latent), and group `z1`, the mean over segments of E[z1];
   - `logmel_stats` (the baseline, nothing learnt): group `stats`, the per-bin mean and
     standard deviation of the normalised log-mel over the frames.
The latent table has one row per utterance of the subset, in the order of data.csv, a
`stem` column and columns `<group>_<i>`; the first group is the representation probed
in the headline metrics (`PRIMARY`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import checkpoint
from .device import select_device
from .figures import plt
from .folds import Fold, fold_record, from_split, split_rows, subset_rows
from .latents import latent_table, latents_path
from .models.fhvae import FHVAE, UNLABELLED, FHVAEConfig
from .models.vae import BetaVAE, BetaVAEConfig
from .normalisation import fit_normalisation, normalise
from .ravdess import SUBSETS

VARIANTS = ("logmel_stats", "beta_vae", "fhvae", "ss_fhvae")
# The groups of latent columns each variant writes; the first is its representation.
GROUPS = {"logmel_stats": ("stats",), "beta_vae": ("z",), "fhvae": ("z2", "z1"),
          "ss_fhvae": ("z2", "z1")}


class RepresentError(ValueError):
    """Inputs a representation cannot be learnt from; the message says which and why."""


# ---------------------------------------------------------------- rows and segments
def training_rows(table: pd.DataFrame, fold: Fold) -> np.ndarray:
    """Positions of the utterances a fold may learn from: its training and validation actors."""
    sides = split_rows(table, fold)
    return np.sort(np.concatenate([sides.train, sides.validation]))


def segment(features: np.ndarray | torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut utterances (N, F, T) into segments (N*S, F, frames), S = T // frames.

    Returns the segments and `owner` (N*S,), the utterance (row) each segment comes from.
    """
    features = torch.as_tensor(features)
    n, bins, total = features.shape
    per_utterance = total // frames
    if per_utterance == 0:
        raise RepresentError(f"utterances of {total} frames are shorter than one segment "
                             f"(represent.segment_frames = {frames})")
    segments = (features[:, :, : per_utterance * frames]
                .reshape(n, bins, per_utterance, frames)                 # (N, F, S, L)
                .permute(0, 2, 1, 3)                                     # (N, S, F, L)
                .reshape(n * per_utterance, bins, frames))               # (N*S, F, L)
    owner = torch.arange(n).repeat_interleave(per_utterance)             # (N*S,)
    return segments.contiguous(), owner


# ---------------------------------------------------------------- models
def build_model(variant: str, params: Any, n_mels: int, n_sequences: int,
                n_classes: int) -> torch.nn.Module:
    """The untrained model of `variant` from the `represent` params section."""
    if variant == "beta_vae":
        p = params.beta_vae
        return BetaVAE(BetaVAEConfig(n_mels=n_mels, segment_frames=params.segment_frames,
                                     channels=tuple(p.channels), latent_dim=p.latent_dim,
                                     beta=p.beta))
    if variant in ("fhvae", "ss_fhvae"):
        p = getattr(params, variant)
        supervised = variant == "ss_fhvae"      # its weight > 0, fhvae's 0: RepresentParams
        config = FHVAEConfig(n_mels=n_mels, hidden=p.hidden, z1_dim=p.z1_dim, z2_dim=p.z2_dim,
                             z2_prior_std=p.z2_prior_std, mu2_prior_std=p.mu2_prior_std,
                             alpha=p.alpha, n_classes=n_classes if supervised else 0,
                             supervised_weight=p.supervised_weight)
        return FHVAE(config, n_sequences)
    raise RepresentError(f"{variant!r} is not a model; models: beta_vae, fhvae, ss_fhvae")


# ---------------------------------------------------------------- training
def train(model: torch.nn.Module, segments: torch.Tensor, owner: torch.Tensor,
          labels: torch.Tensor, *, epochs: int, lr: float, batch_size: int, seed: int,
          progress: bool = True, desc: str = "represent") -> list[dict[str, float]]:
    """Fit `model` on `segments` (M, F, L) with Adam; one row of mean loss terms per epoch.

    `owner` (M,) is each segment's sequence number (0..S-1, the row of the FHVAE's mu2
    table); `labels` (M,) the emotion class of its utterance, -1 when unlabelled.
    Deterministic on CPU for a given seed (initialisation and sampling are seeded by the
    caller through `torch.manual_seed(seed)`, the batch order here).
    """
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    counts = torch.bincount(owner).float()                               # segments per sequence
    history = []
    bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        sums: dict[str, float] = {}
        order = torch.randperm(len(segments), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            terms = _terms(model, segments[batch], owner[batch], counts[owner[batch]],
                           labels[batch])
            optimiser.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimiser.step()
            for key, value in terms.items():
                if value.dim() == 0:
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(batch)
        row = {"epoch": epoch + 1, **{k: v / len(order) for k, v in sums.items()}}
        if not np.isfinite(row["loss"]):
            raise RepresentError(f"{desc}: the loss became {row['loss']} at epoch {epoch + 1}; "
                                 "lower the learning rate")
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.1f}")
    return history


def _terms(model, x, sequence, sequence_segments, label) -> dict[str, torch.Tensor]:
    if isinstance(model, FHVAE):
        return model(x, sequence, sequence_segments, label)
    return model(x)


# ---------------------------------------------------------------- encoding
@torch.no_grad()
def encode(model: torch.nn.Module, segments: torch.Tensor, owner: torch.Tensor,
           n_utterances: int, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Utterance representations, group name -> (N, D), from all segments of N utterances."""
    model.eval()
    if isinstance(model, FHVAE):
        z1, z2 = zip(*(model.encode(segments[i:i + batch_size])
                       for i in range(0, len(segments), batch_size)), strict=True)
        z1, z2 = torch.cat(z1), torch.cat(z2)                            # (M, D1), (M, D2)
        c = model.config
        ratio = (c.z2_prior_std / c.mu2_prior_std) ** 2
        count = torch.bincount(owner, minlength=n_utterances).float()[:, None]
        z2_sum = torch.zeros(n_utterances, z2.shape[1]).index_add_(0, owner, z2)
        mu2 = z2_sum / (count + ratio)                                   # FHVAE.estimate_mu2
        z1_mean = torch.zeros(n_utterances, z1.shape[1]).index_add_(0, owner, z1) / count
        return {"z2": mu2.numpy(), "z1": z1_mean.numpy()}
    mu = torch.cat([model.encode(segments[i:i + batch_size])[0]
                    for i in range(0, len(segments), batch_size)])       # (M, D)
    count = torch.bincount(owner, minlength=n_utterances).float()[:, None]
    return {"z": (torch.zeros(n_utterances, mu.shape[1]).index_add_(0, owner, mu) / count).numpy()}


STATISTICS = {"mean": np.mean, "std": np.std}


def logmel_stats(features: np.ndarray, statistics: list[str]) -> dict[str, np.ndarray]:
    """The baseline: per-bin statistics over frames, e.g. mean and std: (N, F, T) -> (N, 2F)."""
    return {"stats": np.concatenate([STATISTICS[name](features, axis=2) for name in statistics],
                                    axis=1)}






# ---------------------------------------------------------------- one fold
@dataclass
class FoldResult:
    latents: pd.DataFrame                 # one row per utterance of the subset table
    checkpoint: dict[str, Any] | None     # None for logmel_stats (nothing learnt)
    history: list[dict[str, float]]       # per-epoch mean loss terms
    normalised: np.ndarray                # the subset's features, normalised (N, F, T)
    reconstruct: Callable[[np.ndarray], np.ndarray]  # normalised (n, F, T) -> (n, F, T')


def represent_fold(variant: str, features: np.ndarray, table: pd.DataFrame, fold: Fold,
                   subset: str, params: Any, feature_params: dict[str, Any] | None = None,
                   progress: bool = True) -> FoldResult:
    """Learn and encode the representations of one fold (see the module docstring).

    `features` (N, F, T) and `table` are the subset's rows, aligned; `params` is the
    `represent` section.
    """
    if len(features) != len(table):
        raise RepresentError(f"{len(features)} feature rows but {len(table)} table rows")
    if variant not in VARIANTS:
        raise RepresentError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    labels_order = list(SUBSETS[subset])
    known = training_rows(table, fold)                   # training actors: audio and labels
    if len(known) == 0:
        raise RepresentError(f"fold {fold.number}: no training utterances in subset {subset}")
    stats = fit_normalisation(features[known])
    normalised = normalise(torch.as_tensor(features), stats).numpy()    # (N, F, T)

    if variant == "logmel_stats":
        groups = logmel_stats(normalised, params.logmel_stats.statistics)
        return FoldResult(latent_table(table["stem"], groups), None, [], normalised,
                          lambda x: np.repeat(x.mean(axis=2, keepdims=True), x.shape[2], 2))

    learn = known
    if params.transductive:                              # test actors' audio, never their labels
        learn = np.sort(np.concatenate([known, split_rows(table, fold).test]))
    emotion = table["emotion_name"].to_numpy()[learn]
    classes = np.where(np.isin(learn, known),
                       [labels_order.index(e) for e in emotion], UNLABELLED)
    device = select_device(params.device)
    torch.manual_seed(params.seed)
    segments, owner = segment(normalised[learn], params.segment_frames)  # owner in 0..len(learn)-1
    model = build_model(variant, params, features.shape[1], len(learn), len(labels_order))
    p = getattr(params, variant)
    history = train(model.to(device), segments.to(device), owner.to(device),
                    torch.as_tensor(classes)[owner].to(device), epochs=p.epochs, lr=p.lr,
                    batch_size=params.batch_size, seed=params.seed, progress=progress,
                    desc=f"{variant}-{subset} fold {fold.number}")
    model = model.cpu()
    all_segments, all_owner = segment(normalised, params.segment_frames)
    groups = encode(model, all_segments, all_owner, len(table))
    checkpoint = {
        "state_dict": model.state_dict(),
        "model": variant,
        "config": dataclasses.asdict(model.config),
        "labels": labels_order,
        "normalisation": stats,
        "feature_params": dict(feature_params or {}),
        "fold": fold_record(fold),
        "subset": subset,
        "best_epoch": len(history),                      # no model selection: the last epoch
        "segment_frames": params.segment_frames,
        "transductive": params.transductive,
        "n_sequences": len(learn),                       # rows of the fhvae's mu2 table
    }
    return FoldResult(latent_table(table["stem"], groups), checkpoint, history, normalised,
                      lambda x: _reconstruct(model, x, params.segment_frames))


@torch.no_grad()
def _reconstruct(model: torch.nn.Module, utterances: np.ndarray, frames: int) -> np.ndarray:
    """Segment-wise reconstructions of utterances (n, F, T), joined: (n, F, S*frames)."""
    model.eval()
    segments, _ = segment(utterances, frames)                            # (n*S, F, L)
    out = model.reconstruct(segments)                                    # (n*S, F, L)
    n, bins = utterances.shape[:2]
    per = len(segments) // n
    return (out.reshape(n, per, bins, frames).permute(0, 2, 1, 3)
            .reshape(n, bins, per * frames).numpy())


# ---------------------------------------------------------------- one dvc.yaml cell
@dataclass
class CellRepresentations:
    """Every fold's representations of one variant and subset."""

    table: pd.DataFrame                   # the subset's rows of data.csv
    folds: list[Fold]
    results: list[FoldResult]             # one per fold, in fold order


def represent_cell(variant: str, subset: str, table: pd.DataFrame, features: np.ndarray,
                   params: Any, feature_params: dict[str, Any] | None = None,
                   progress: bool = True, log=print) -> CellRepresentations:
    """Every fold of `params.split` for one variant and subset.

    `table` is data.csv and `features` (N, F, T) its rows, aligned; `params` the whole
    validated params (sections `represent` and `split` are read).
    """
    if len(table) != len(features):
        raise RepresentError(f"data.csv has {len(table)} rows but the features {len(features)}")
    rows = subset_rows(table, subset)
    sub = table.iloc[rows].reset_index(drop=True)
    folds = from_split(sub["actor"], params.split, log=log)
    results = [represent_fold(variant, features[rows], sub, fold, subset, params.represent,
                              feature_params, progress) for fold in folds]
    return CellRepresentations(sub, folds, results)




def write_cell(out_dir: Path, cell: CellRepresentations) -> None:
    """Latents, checkpoints and loss histories of every fold into `out_dir` (made whole
    by the caller with `atomic.atomic_dir`)."""
    for fold, result in zip(cell.folds, cell.results, strict=True):
        result.latents.to_csv(latents_path(out_dir, fold.number), index=False,
                              lineterminator="\n")
        if result.checkpoint is not None:
            checkpoint.save(checkpoint.path_for(out_dir, fold.number), result.checkpoint)
            pd.DataFrame(result.history).round(4).to_csv(
                out_dir / f"fold{fold.number}_history.csv", index=False, lineterminator="\n")




def reconstruction_figure(cell: CellRepresentations, variant: str, per_emotion: int = 1,
                          emotions: int = 4):
    """Inputs beside their reconstructions: test-actor utterances of the first fold."""
    fold, result = cell.folds[0], cell.results[0]
    test = split_rows(cell.table, fold).test
    chosen = []
    for emotion in list(SUBSETS["all"]):
        rows = [r for r in test if cell.table["emotion_name"].iat[r] == emotion]
        chosen += rows[:per_emotion]
        if len(chosen) >= emotions * per_emotion:
            break
    inputs = result.normalised[chosen]                                   # (n, F, T)
    outputs = result.reconstruct(inputs)                                 # (n, F, T')
    fig, axes = plt.subplots(len(chosen), 2, figsize=(9, 1.9 * len(chosen)), squeeze=False,
                             sharex=True, sharey=True)
    limits = dict(vmin=float(np.percentile(inputs, 1)), vmax=float(np.percentile(inputs, 99)))
    for i, row in enumerate(chosen):
        name = f"{cell.table['stem'].iat[row]} ({cell.table['emotion_name'].iat[row]})"
        for j, (image, what) in enumerate(((inputs[i], "input"), (outputs[i], "reconstruction"))):
            ax = axes[i, j]
            ax.imshow(image, origin="lower", aspect="auto", cmap="magma", **limits)
            ax.set_title(f"{what}: {name}", fontsize=8)
        axes[i, 0].set_ylabel("mel bin")
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    fig.suptitle(f"{variant}, fold {fold.number} test actors {list(fold.test_actors)} "
                 "(normalised log-mel)", fontsize=10)
    fig.tight_layout()
    return fig

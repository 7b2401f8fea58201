"""Checkpoints: save atomically, load safely (`torch.load(weights_only=True)`).

A checkpoint `models/<model>-<subset>/fold<k>.pt` is a plain dict of tensors and
primitives (the contract in ARCHITECTURE.md):

    state_dict      the kept epoch's weights; under train.ensemble > 1 a list of them,
                    one per member (seeds train.seed, train.seed + 1, ...)
    model           "cnn" | "cnn_transformer" (speech_emotion.models.MODELS)
    config          the model's config dataclass as a dict
    labels          emotion names in class order
    normalisation   {"mean": (F,), "std": (F,)} fitted on the training actors
    feature_params  the `features` params of the features it was trained on
    fold            {"number", "test_actors", "validation_actors", "train_actors"}
    subset          "all" | "strong" | "normal"
    best_epoch      the epoch whose weights these are (1-based; the last under monitor: none);
                    a list, one per member, under train.ensemble > 1
    monitor         train.monitor: "ua" | "loss" (best epoch on the validation actors) |
                    "none" (validation actors trained too, last epoch)
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_path

KEYS = ("state_dict", "model", "config", "labels", "normalisation", "feature_params", "fold",
        "subset", "best_epoch")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or incomplete; the message names the file."""


def path_for(model_dir: str | Path, fold_number: int) -> Path:
    """`models/<model>-<subset>/fold<k>.pt`."""
    return Path(model_dir) / f"fold{fold_number}.pt"


def save(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write `checkpoint` to `path`, whole or not at all."""
    missing = [key for key in KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    buffer = io.BytesIO()       # torch.save names the archive after a file; a buffer's is fixed,
    torch.save(checkpoint, buffer)  # so the same checkpoint gives the same bytes
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, on CPU, loaded with weights_only=True (no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; run the train stage")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({err})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(checkpoint).__name__}")
    missing = [key for key in KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return checkpoint


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval mode, on `device`) and its checkpoint dict: the model
    itself, or a `SeedEnsemble` of its members when `state_dict` is a list of them.

    Score features with `speech_emotion.inference.predict_proba(model, checkpoint, features)`.
    """
    from . import models  # here, so that saving (the VAEs) needs no classifier code
    from .models.ensemble import SeedEnsemble

    checkpoint = load(path)
    n_bins = int(checkpoint["normalisation"]["mean"].shape[0])
    weights = checkpoint["state_dict"]
    try:
        members = []
        for state_dict in (weights if isinstance(weights, list) else [weights]):
            member = models.build(checkpoint["model"], checkpoint["config"], n_bins,
                                  len(checkpoint["labels"]))
            member.load_state_dict(state_dict)
            members.append(member)
        model = SeedEnsemble(members) if isinstance(weights, list) else members[0]
    except (ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: cannot rebuild the model ({err})") from None
    return model.to(device).eval(), checkpoint

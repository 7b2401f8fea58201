"""Checkpoints: save atomically, load safely (`torch.load(weights_only=True)`).

A checkpoint `models/<model>-<subset>/fold<k>.pt` is a plain dict of tensors and
primitives (the contract in ARCHITECTURE.md):

    state_dict      the kept epoch's weights; under train.ensemble > 1 a list of them,
                    one per member (seeds train.seed, train.seed + 1, ...)
    model           "cnn" | "cnn_transformer" | "whisper_mlp" | "whisper_asp"
                    (speech_emotion.models.MODELS)
    config          the model's config dataclass as a dict
    labels          emotion names in class order
    normalisation   {"mean": (F,), "std": (F,)} fitted on the training actors; under
                    train.speaker_norm also "speaker": {"mean", "std": the training rows'
                    own statistics, "prior", "per_frame"[, "pooled"]} (normalisation.py)
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


# Config keys a model gained after checkpoints of it were written, with the value that
# means what those checkpoints did: an older checkpoint loads as it was trained.
ADDED_CONFIG: dict[str, dict[str, Any]] = {
    "whisper_mlp": {"layer_weighting": "learnt", "layer_dropout": 0.0},
}


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
    if not zipfile.is_zipfile(path):    # torch.save writes a zip; its directory is at the end
        raise CheckpointError(f"{path}: not a loadable checkpoint: truncated or corrupt (not a "
                              f"complete torch archive: {path.stat().st_size} bytes, no zip "
                              "directory at the end); copy or train it again")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({_first_line(err)})") from None
    except OSError as err:             # a member cut short: "[Errno 22] Invalid argument"
        raise CheckpointError(f"{path}: not a loadable checkpoint: truncated or corrupt (a part "
                              f"of it cannot be read: {err.strerror or err}); copy or train it "
                              "again") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(checkpoint).__name__}")
    missing = [key for key in KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if isinstance(checkpoint["config"], dict):   # keys a model gained after it was saved
        checkpoint["config"] = {**ADDED_CONFIG.get(checkpoint["model"], {}),
                                **checkpoint["config"]}
    check_schema(checkpoint, path)
    return checkpoint


def check_schema(checkpoint: dict[str, Any], path: str | Path) -> None:
    """The fields that scoring reads, checked against each other; CheckpointError naming the
    file and the field (`normalisation.mean`, `feature_params.n_mels`, ...) otherwise."""
    from .params import GRID_HEADS, HEAD_MODELS, MODEL_CONFIGS, ParamsError, convert

    def bad(field: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: checkpoint field {field}: {problem}")

    if checkpoint["model"] not in MODEL_CONFIGS:
        raise bad("model", f"unknown model {checkpoint['model']!r}; known: "
                           f"{', '.join(MODEL_CONFIGS)}")
    labels = checkpoint["labels"]
    if not isinstance(labels, (list, tuple)) or not labels \
            or not all(isinstance(label, str) for label in labels):
        raise bad("labels", f"expected a list of emotion names, got {labels!r}")
    try:
        convert(checkpoint["config"], MODEL_CONFIGS[checkpoint["model"]], "config", str(path))
    except ParamsError as err:              # "<file>: config.kernel_size = 4, must be ..."
        raise CheckpointError(str(err).replace(f"{path}: ", f"{path}: checkpoint field ", 1)
                              ) from None
    # The whole of feature_params is checked where it is used (predict.feature_params_of,
    # evaluate); here, the bins that the normalisation and the weights were made for.
    feature_params = checkpoint["feature_params"]
    if not isinstance(feature_params, dict):
        raise bad("feature_params", f"expected a mapping, got {type(feature_params).__name__}")
    if checkpoint["model"] in HEAD_MODELS:      # encoded.h5: 2 x d_model bins, n_states layers
        shape = tuple(feature_params.get(k) for k in ("d_model", "n_states"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
            raise bad("feature_params.d_model/n_states", f"expected positive integers, got {shape}")
        which, expected = "d_model/n_states", (2 * shape[0], shape[1])
        if checkpoint["model"] in GRID_HEADS:   # /grid: n_states x d_model bins, per bin
            expected = (shape[0] * shape[1],)
    else:
        kind = feature_params.get("kind")
        which = {"logmel": "n_mels", "mfcc": "n_mfcc"}.get(kind)
        if which is None:
            raise bad("feature_params.kind", f"expected logmel or mfcc, got {kind!r}")
        bins = feature_params.get(which)
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
            raise bad(f"feature_params.{which}", f"expected a positive integer, got {bins!r}")
        expected = (bins,)
    norm = checkpoint["normalisation"]
    if not isinstance(norm, dict):
        raise bad("normalisation", f"expected {{'mean', 'std'}} tensors, got {type(norm).__name__}")
    for key in ("mean", "std"):
        value = norm.get(key)
        if not isinstance(value, torch.Tensor) or value.ndim != len(expected):
            raise bad(f"normalisation.{key}", f"missing or not a {len(expected)}-D tensor")
        if tuple(value.shape) != expected:
            raise bad(f"normalisation.{key}", f"shape {tuple(value.shape)}, but feature_params."
                      f"{which} give {expected}: the feature params disagree with the weights")
    speaker = norm.get("speaker")           # train.speaker_norm; absent in older checkpoints
    if speaker is not None:
        if not isinstance(speaker, dict) or not isinstance(speaker.get("prior"), (int, float)) \
                or speaker["prior"] < 0 or not isinstance(speaker.get("per_frame"), bool):
            raise bad("normalisation.speaker", "expected {'mean', 'std', 'prior' >= 0, "
                      "'per_frame'}")
        for key in ("mean", "std"):
            value = speaker.get(key)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != (
                    tuple(norm["mean"].shape) if speaker["per_frame"] else expected[:1]):
                raise bad(f"normalisation.speaker.{key}", "missing, or not the shape of the "
                          "training statistics")
    if not isinstance(checkpoint["fold"], dict) or "number" not in checkpoint["fold"]:
        raise bad("fold", "expected a mapping with the fold's number")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval mode, on `device`) and its checkpoint dict: the model
    itself, or a `SeedEnsemble` of its members when `state_dict` is a list of them.

    Score features with `speech_emotion.inference.predict_proba(model, checkpoint, features)`.
    """
    from . import models  # here, so that saving (the VAEs) needs no classifier code
    from .models.ensemble import SeedEnsemble

    checkpoint = load(path)
    mean = checkpoint["normalisation"]["mean"]                   # (F,), or (F, L) for a head
    n_bins, n_frames = int(mean.shape[0]), (int(mean.shape[1]) if mean.ndim == 2 else None)
    weights = checkpoint["state_dict"]
    try:
        members = []
        for state_dict in (weights if isinstance(weights, list) else [weights]):
            member = models.build(checkpoint["model"], checkpoint["config"], n_bins,
                                  len(checkpoint["labels"]), n_frames,
                                  checkpoint["feature_params"].get("n_states"))
            member.load_state_dict(state_dict)
            members.append(member)
        model = SeedEnsemble(members) if isinstance(weights, list) else members[0]
    except (ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: cannot rebuild the model ({err})") from None
    return model.to(device).eval(), checkpoint

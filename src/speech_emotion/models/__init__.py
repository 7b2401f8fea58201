"""The classifiers, by name: `build(name, config, n_features, n_classes, n_frames)`.

Each model is a plain `nn.Module` taking features (B, F, T) and returning logits
(B, n_classes); its config is a frozen dataclass, validated from the params.yaml section
of the same name (`speech_emotion.params.MODEL_CONFIGS`). The log-mel models
(`params.FEATURE_MODELS`) read features.h5, whose T is time; the heads over the
pretrained encoder (`params.HEAD_MODELS`) read encoded.h5, whose T is the encoder's layers
(the model's `time_axis` is False).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from ..params import GRID_HEADS, HEAD_MODELS, MODEL_CONFIGS, convert

# name -> (module of this package, nn.Module class); the name is also the params.yaml
# section (its config: params.MODEL_CONFIGS). A model's module is imported when the model
# is built, so a stage that trains or scores one model runs (and declares in dvc.yaml)
# that model's code only.
MODELS: dict[str, tuple[str, str]] = {
    "cnn": ("cnn", "CNN"),
    "cnn_transformer": ("cnn_transformer", "CNNTransformer"),
    "whisper_mlp": ("whisper_mlp", "WhisperMLP"),
    "whisper_asp": ("whisper_asp", "WhisperASP"),
}
assert set(MODELS) == set(MODEL_CONFIGS), "every model needs a config in params.MODEL_CONFIGS"


def model_class(name: str) -> type[nn.Module]:
    module, cls = MODELS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def config_from(name: str, config: Any) -> Any:
    """The model's config dataclass from a dataclass or a plain dict (e.g. a checkpoint's)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    cls = MODEL_CONFIGS[name]
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        return convert(dict(config), cls, name, "model config")  # params.yaml's validation
    raise TypeError(f"{name}: config must be a {cls.__name__} or a dict, got {type(config)}")


def build(name: str, config: Any, n_features: int, n_classes: int,
          n_frames: int | None = None, n_states: int | None = None) -> nn.Module:
    """A freshly initialised model `name` (weights from torch's current RNG state);
    `n_frames`: the input's T; a head needs its encoder's hidden states, which are T for
    a pooled head and `n_states` (encoded.h5's attribute) for a grid head."""
    config = config_from(name, config)
    if is_head(name):
        layers = n_states if reads_grid(name) else n_frames
        if layers is None:
            raise ValueError(f"{name}: a head needs the encoder's hidden states "
                             f"({'n_states' if reads_grid(name) else 'n_frames'})")
        return model_class(name)(config, n_features, n_classes, layers)
    return model_class(name)(config, n_features, n_classes)


def is_head(name: str) -> bool:
    """A head over the pretrained encoder (input encoded.h5), not a log-mel model."""
    return name in HEAD_MODELS


def reads_grid(name: str) -> bool:
    """A head over the encoder's frames on a grid (encoded.h5 /grid, (N, L*D, G)), not over
    each layer's pooled statistics (/pooled, (N, 2D, L)); its normalisation statistics are
    per dimension over the frames, not per dimension and layer."""
    return name in GRID_HEADS


def time_axis(model: nn.Module) -> bool:
    """Whether the model's input T is time (test-time shifts apply); an ensemble's members'."""
    members = getattr(model, "members", None)
    first = members[0] if members is not None else model
    return getattr(first, "time_axis", True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""The classifiers, by name: `build(name, config, n_features, n_classes)`.

Each model is a plain `nn.Module` taking features (B, F, T) and returning logits
(B, n_classes); its config is a frozen dataclass, validated from the params.yaml section
of the same name (`speech_emotion.params.MODEL_CONFIGS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..params import MODEL_CONFIGS, convert
from .cnn import CNN
from .cnn_transformer import CNNTransformer

# name -> (module class, config dataclass); the name is also the params.yaml section.
MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "cnn": (CNN, MODEL_CONFIGS["cnn"]),
    "cnn_transformer": (CNNTransformer, MODEL_CONFIGS["cnn_transformer"]),
}
assert set(MODELS) == set(MODEL_CONFIGS), "every model needs a config in params.MODEL_CONFIGS"


def config_from(name: str, config: Any) -> Any:
    """The model's config dataclass from a dataclass or a plain dict (e.g. a checkpoint's)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    cls = MODELS[name][1]
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        return convert(dict(config), cls, name, "model config")  # params.yaml's validation
    raise TypeError(f"{name}: config must be a {cls.__name__} or a dict, got {type(config)}")


def build(name: str, config: Any, n_features: int, n_classes: int) -> nn.Module:
    """A freshly initialised model `name` (weights from torch's current RNG state)."""
    config = config_from(name, config)
    return MODELS[name][0](config, n_features, n_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

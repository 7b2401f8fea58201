"""The classifiers, by name: `build(name, config, n_features, n_classes)`.

Each model is a plain `nn.Module` taking features (B, F, T) and returning logits
(B, n_classes); its config is a frozen dataclass, validated from the params.yaml section
of the same name (`speech_emotion.params.MODEL_CONFIGS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from ..params import MODEL_CONFIGS, convert

# name -> (module of this package, nn.Module class); the name is also the params.yaml
# section (its config: params.MODEL_CONFIGS). A model's module is imported when the model
# is built, so a stage that trains or scores one model runs (and declares in dvc.yaml)
# that model's code only.
MODELS: dict[str, tuple[str, str]] = {
    "cnn": ("cnn", "CNN"),
    "cnn_transformer": ("cnn_transformer", "CNNTransformer"),
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


def build(name: str, config: Any, n_features: int, n_classes: int) -> nn.Module:
    """A freshly initialised model `name` (weights from torch's current RNG state)."""
    config = config_from(name, config)
    return model_class(name)(config, n_features, n_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

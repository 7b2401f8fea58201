"""What the heads over the frozen encoder share (whisper_mlp, whisper_asp): which hidden
states they weigh, and the classifier over their pooled input."""

from __future__ import annotations

import torch
from torch import nn


def layer_indices(name: str, layers: str | list[int], n_layers: int) -> torch.Tensor:
    """The hidden states a head weighs (`<name>.layers`): every one under `all`, else the
    given indices, -1 the last; ValueError when one is not among the encoder's `n_layers`."""
    chosen = list(range(n_layers)) if layers == "all" else list(layers)
    if any(not -n_layers <= i < n_layers for i in chosen):
        raise ValueError(f"{name}.layers {layers}: the encoder has {n_layers} hidden states "
                         f"(0..{n_layers - 1}, or -1 for the last)")
    return torch.tensor([i % n_layers for i in chosen])


def classifier(width: int, hidden: int, dropout: float, n_classes: int) -> list[nn.Module]:
    """A head's classifier over its pooled input (B, width): dropout, Linear(width, hidden),
    ReLU, dropout, Linear(hidden, C); `hidden: 0`, dropout and Linear(width, C)."""
    return [nn.Dropout(dropout),
            *((nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
               nn.Linear(hidden, n_classes)) if hidden else (nn.Linear(width, n_classes),))]

"""A head over a frozen pretrained encoder: a learnt weighting of its layers, then an MLP.

EmoBox's recipe (and SUPERB's weighted sum): each utterance's hidden states, pooled over
its frames, are mixed with softmax weights learnt per layer, then classified:

    x (B, F = 2D, L): per-layer mean and std of the D-dim states (encoded.h5 /pooled),
                      normalised with training statistics
    -> the configured statistics ([mean] or [mean, std])  (B, S*D, L)
    -> the configured layers (all, or the given indices)   (B, S*D, L')
    -> sum over layers with softmax(w) (L',), or their mean (`layer_weighting`); in
       training each layer is left out with P `layer_dropout` (never all), the kept
       weights renormalised                                (B, S*D)
    -> dropout, Linear(S*D, hidden), ReLU, dropout, Linear(hidden, n_classes)  (B, C);
       `hidden: 0`: dropout, Linear(S*D, n_classes), a linear head

Mean pooling after the weighted sum equals the weighted sum of the layers' means, so the
pooled statistics are all the head needs. Its input has no time axis (`time_axis`):
test-time shifts and time-domain augmentation do not apply.
"""

from __future__ import annotations

import torch
from torch import nn

from ..params import WhisperMLPConfig
from .heads import classifier, layer_indices


class WhisperMLP(nn.Module):
    time_axis = False

    def __init__(self, config: WhisperMLPConfig, n_features: int, n_classes: int,
                 n_layers: int):
        super().__init__()
        if n_features % 2:
            raise ValueError(f"whisper_mlp: {n_features} input features; expected the mean "
                             "and std of each encoder dimension (an even number)")
        dim = n_features // 2
        self.register_buffer("layers", layer_indices("whisper_mlp", config.layers, n_layers),
                             persistent=False)
        stats = {"mean": slice(0, dim), "std": slice(dim, 2 * dim)}
        self.register_buffer("features", torch.cat([torch.arange(n_features)[stats[s]]
                                                    for s in config.statistics]),
                             persistent=False)
        # softmax: uniform at start; under layer_weighting: mean, never trained
        self.layer_weights = nn.Parameter(torch.zeros(len(self.layers)),
                                          requires_grad=config.layer_weighting == "learnt")
        self.layer_dropout = config.layer_dropout
        self.mlp = nn.Sequential(*classifier(len(self.features), config.hidden, config.dropout,
                                             n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:           # (B, 2D, L)
        x = x[:, self.features][..., self.layers]                  # (B, S*D, L')
        logits = self.layer_weights.expand(len(x), -1)             # (B, L')
        if self.training and self.layer_dropout > 0:               # whole layers left out
            dropped = torch.rand(logits.shape, device=x.device) < self.layer_dropout
            dropped[dropped.all(dim=1)] = False                    # never every layer
            logits = logits.masked_fill(dropped, float("-inf"))
        weights = torch.softmax(logits, dim=1)                     # (B, L')
        x = (x * weights[:, None, :]).sum(-1)                      # (B, S*D)
        return self.mlp(x)                                         # (B, C)

"""A frame head over a frozen pretrained encoder: a learnt mix of its layers, attentive
statistics pooling over the utterance's frames, then an MLP.

The pooled head (whisper_mlp) sees each layer's mean over the utterance, the same weight
for every frame. This head learns which frames to listen to (Okabe et al. 2018,
attentive statistics pooling; over a SUPERB-style weighted sum of the layers):

    x (B, L*D, G): every layer's frames on the utterance's grid (encoded.h5 /grid: the
                   frames averaged over G equal stretches), normalised per dimension with
                   training statistics
    -> (B, L, D, G), the configured layers, summed with softmax(w) (L',)    (B, D, G)
    -> attention: e_t = v . tanh(W h_t + b), alpha = softmax_t(e)            (B, G)
    -> the configured statistics: mu = sum_t alpha_t h_t,
       sigma = sqrt(sum_t alpha_t h_t^2 - mu^2)                              (B, S*D)
    -> `pooled_norm`: batch norm of the pooled statistics (the input is standardised per
       frame, so an utterance's statistics vary far less than its frames)
    -> dropout, Linear(S*D, hidden), ReLU, dropout, Linear(hidden, C)        (B, C)
       (`hidden: 0`: dropout, Linear(S*D, C))

Its input's T is time, but a coarse grid (a cell is a tenth of a second or more), so
test-time shifts (evaluate.shifts, in log-mel frames) do not apply (`time_axis`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..params import WhisperASPConfig
from .heads import classifier, layer_indices


class WhisperASP(nn.Module):
    time_axis = False            # no test-time shifts (see above)

    def __init__(self, config: WhisperASPConfig, n_features: int, n_classes: int,
                 n_layers: int):
        super().__init__()
        if n_features % n_layers:
            raise ValueError(f"whisper_asp: {n_features} input features are not {n_layers} "
                             "layers of equal width")
        self.n_layers, dim = n_layers, n_features // n_layers
        self.register_buffer("layers", layer_indices("whisper_asp", config.layers, n_layers),
                             persistent=False)
        self.layer_weights = nn.Parameter(torch.zeros(len(self.layers)))  # softmax: uniform
        self.attention = nn.Sequential(nn.Conv1d(dim, config.attention, 1), nn.Tanh(),
                                       nn.Conv1d(config.attention, 1, 1))
        self.statistics = list(config.statistics)
        width = dim * len(self.statistics)
        self.mlp = nn.Sequential(*((nn.BatchNorm1d(width),) if config.pooled_norm else ()),
                                 *classifier(width, config.hidden, config.dropout, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:            # (B, L*D, G)
        b, _, g = x.shape
        x = x.view(b, self.n_layers, -1, g)[:, self.layers]         # (B, L', D, G)
        weights = torch.softmax(self.layer_weights, dim=0)          # (L',)
        h = (x * weights[None, :, None, None]).sum(1)              # (B, D, G)
        alpha = torch.softmax(self.attention(h), dim=2)             # (B, 1, G)
        mean = (alpha * h).sum(2)                                   # (B, D)
        pooled = {"mean": mean}
        if "std" in self.statistics:
            var = (alpha * h * h).sum(2) - mean * mean
            pooled["std"] = var.clamp(min=1e-6).sqrt()              # (B, D)
        return self.mlp(torch.cat([pooled[s] for s in self.statistics], dim=1))  # (B, C)

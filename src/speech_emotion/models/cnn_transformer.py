"""The hybrid: parallel CNN branches beside a Transformer-encoder branch.

After Ilia Zenkov's "Parallel is All You Want" (2020; github.com/IliaZenkov/
transformer-cnn-emotion-recognition): parallel 2D conv branches over the spectrogram for
spatial patterns, a Transformer encoder over the max-pooled frame sequence for temporal
ones, their embeddings concatenated into one linear classifier. How and why this version
differs is in docs/MODELS.md.

    features (B, F, T)                          normalised log-mel
    -> [+ deltas] x (B, C0, F, T)               C0 = 1 + config.deltas
    conv branch i (one per kernel size), each:
         conv blocks (B, C, F', T') -> (B, C*F', T') -> mean and max over T'  (B, 2*C*F')
    transformer branch:
         x as a sequence (B, T, C0*F) -> max-pool over time (B, T/p, C0*F)
         -> linear (B, T/p, d_model) + sinusoidal positions
         -> encoder layers (B, T/p, d_model) -> mean over time                (B, d_model)
    [training: branch dropout, each utterance loses each branch's embedding with
     probability branch_dropout, never all of them]
    concat (B, n_branches*2*C*F' + d_model) -> dropout -> linear (B, n_classes)   logits

Branch dropout (the modality dropout of multimodal fusion; off by default) targets a
measured problem: trained jointly, the Transformer branch fits the training actors fastest
and the hybrid scores below the plain `cnn`. The classifier is linear, so its logits are a
sum of one part per branch; when branches are dropped, each part must classify by itself,
and at test the parts add up like an ensemble of the branches. On six folds and two seeds
of real speech it did not pay (docs/ACCURACY.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..params import CNNTransformerConfig  # the `cnn_transformer` section of params.yaml
from .cnn import add_deltas, conv_block, pooled_size


def sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(length, dim) sinusoidal position encodings (Vaswani et al. 2017), any length."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table


class ConvBranch(nn.Module):
    """(B, C0, F, T) -> (B, 2*C*F'): conv blocks, then mean and max over time."""

    def __init__(self, c_in: int, n_features: int, channels: list[int], kernel_size: int,
                 pool: int, dropout: float):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"cnn_transformer.kernel_sizes must be odd, got {kernel_size}")
        blocks = []
        for c_out in channels:
            blocks.append(conv_block(c_in, c_out, (kernel_size, kernel_size), pool, dropout))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_features = 2 * c_in * pooled_size(n_features, pool, len(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x).flatten(1, 2)                          # (B, C*F', T')
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)   # (B, 2*C*F')


class TransformerBranch(nn.Module):
    """(B, C0, F, T) -> (B, d_model): a Transformer encoder over the pooled frames."""

    def __init__(self, c_in: int, n_features: int, config: CNNTransformerConfig):
        super().__init__()
        if config.d_model % config.n_heads:
            raise ValueError(f"cnn_transformer.d_model ({config.d_model}) must be a multiple "
                             f"of n_heads ({config.n_heads})")
        self.positional = config.positional
        self.pool = nn.MaxPool1d(config.time_pool, ceil_mode=True)
        self.project = nn.Linear(c_in * n_features, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.n_heads, config.dim_feedforward,
            config.transformer_dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.out_features = config.d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        x = self.pool(x.reshape(b, c * f, t))          # (B, C0*F, T/p)
        x = self.project(x.transpose(1, 2))            # (B, T/p, d_model)
        if self.positional:
            x = x + sinusoids(x.shape[1], x.shape[2], x.device).to(x.dtype)
        x = self.norm(self.encoder(x))                 # (B, T/p, d_model)
        return x.mean(dim=1)                           # (B, d_model)


class CNNTransformer(nn.Module):
    def __init__(self, config: CNNTransformerConfig, n_features: int, n_classes: int):
        super().__init__()
        if not config.kernel_sizes:
            raise ValueError("cnn_transformer.kernel_sizes must name at least one branch")
        if config.transformer_lr_scale < 0.0:
            raise ValueError(f"cnn_transformer.transformer_lr_scale must be >= 0, "
                             f"got {config.transformer_lr_scale}")
        if not 0.0 <= config.branch_dropout < 1.0:
            raise ValueError(f"cnn_transformer.branch_dropout must be in [0, 1), "
                             f"got {config.branch_dropout}")
        self.config = config
        c_in = 1 + config.deltas
        self.conv_branches = nn.ModuleList(
            ConvBranch(c_in, n_features, config.channels, k, config.pool, config.conv_dropout)
            for k in config.kernel_sizes)
        self.transformer = TransformerBranch(c_in, n_features, config)
        width = sum(b.out_features for b in self.conv_branches) + self.transformer.out_features
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(width, n_classes)

    def param_groups(self) -> list[dict]:
        """Optimiser parameter groups: everything else at the learning rate, then the
        Transformer branch at `transformer_lr_scale` times it (key `lr_scale`)."""
        mine = {id(p) for p in self.transformer.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) not in mine], "lr_scale": 1.0},
                {"params": list(self.transformer.parameters()),
                 "lr_scale": self.config.transformer_lr_scale}]

    def branches(self, features: torch.Tensor) -> list[torch.Tensor]:
        """(B, F, T) -> one embedding per branch: n x (B, 2*C*F'), then (B, d_model)."""
        x = add_deltas(features, self.config.deltas)                 # (B, C0, F, T)
        parts = [branch(x) for branch in self.conv_branches]
        parts.append(self.transformer(x))
        return parts

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> (B, width): the branches' embeddings side by side."""
        return torch.cat(self.branches(features), dim=1)

    def drop_branches(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Zero each utterance's embedding of each branch with probability branch_dropout;
        an utterance that would lose every branch keeps one, drawn at random."""
        p = self.config.branch_dropout
        if not self.training or p == 0.0:
            return parts
        batch, device = parts[0].shape[0], parts[0].device
        keep = torch.rand(batch, len(parts), device=device) >= p     # (B, n_branches)
        lone = torch.randint(len(parts), (batch,), device=device)
        keep[torch.arange(batch, device=device), lone] |= ~keep.any(dim=1)
        return [part * keep[:, i, None].to(part.dtype) for i, part in enumerate(parts)]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> logits (B, n_classes)."""
        parts = self.drop_branches(self.branches(features))
        return self.classifier(self.dropout(torch.cat(parts, dim=1)))

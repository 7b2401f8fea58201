"""The base model: a 2D CNN over the log-mel image.

    features (B, F, T)            normalised log-mel (or MFCC), F bins, T frames
    -> [+ deltas]   (B, C0, F, T)  C0 = 1 + config.deltas (deltas along time as channels)
    -> conv blocks  (B, C, F', T') each: conv k x k, batch norm, ReLU, max-pool, dropout
    -> (B, C*F', T')               channels x frequency bands as one vector per frame
    -> mean and max over T' (B, 2*C*F')
    -> dropout, linear (B, n_classes)  logits

Pooling over time only makes the model indifferent to the clip length (the same weights
score a 1 s and a 5 s clip) while keeping where in frequency a pattern sits (pitch,
formants), which a global average over frequency would throw away.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF
from torch import nn

from ..params import CNNConfig  # the `cnn` section of params.yaml


def add_deltas(x: torch.Tensor, order: int) -> torch.Tensor:
    """(B, F, T) -> (B, 1 + order, F, T): the features and their time derivatives."""
    if order not in (0, 1, 2):
        raise ValueError(f"deltas must be 0, 1 or 2, got {order}")
    channels = [x]
    for _ in range(order):
        channels.append(AF.compute_deltas(channels[-1], win_length=5))
    return torch.stack(channels, dim=1)


def pooled_size(size: int, pool: int, blocks: int) -> int:
    """An axis of `size` after `blocks` max-pools of `pool` (ceil mode)."""
    for _ in range(blocks):
        size = -(-size // pool)
    return size


def conv_block(c_in: int, c_out: int, kernel_size: tuple[int, int], pool: int,
               dropout: float) -> nn.Sequential:
    """conv, batch norm, ReLU, max-pool, dropout: (B, c_in, F, T) -> (B, c_out, F/pool, T/pool)."""
    padding = (kernel_size[0] // 2, kernel_size[1] // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(pool, ceil_mode=True),
        nn.Dropout(dropout),
    )


class CNN(nn.Module):
    def __init__(self, config: CNNConfig, n_features: int, n_classes: int):
        super().__init__()
        if config.kernel_size % 2 == 0:
            raise ValueError(f"cnn.kernel_size must be odd, got {config.kernel_size}")
        self.config = config
        blocks, c_in = [], 1 + config.deltas
        for c_out in config.channels:
            blocks.append(conv_block(c_in, c_out, (config.kernel_size, config.kernel_size),
                                     config.pool, config.dropout))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.classifier_dropout)
        bands = pooled_size(n_features, config.pool, len(config.channels))
        self.classifier = nn.Linear(2 * c_in * bands, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> (B, 2*C*F'): the pooled embedding the classifier reads."""
        x = add_deltas(features, self.config.deltas)  # (B, C0, F, T)
        x = self.blocks(x).flatten(1, 2)               # (B, C*F', T')
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)  # (B, 2*C*F')

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> logits (B, n_classes)."""
        return self.classifier(self.dropout(self.embed(features)))

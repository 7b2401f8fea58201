"""A seed ensemble: the models of one fold trained from different seeds (`train.ensemble`
members, seeds `train.seed` up), their class probabilities averaged.

    features (B, F, T) -> each member's logits (B, n_classes) -> softmax
    -> mean over the members (B, n_classes) -> log                      log-probabilities

The output is the log of the mean probabilities, so it stands wherever logits do:
softmax turns it back into the mean and argmax picks the same class. Built by
`checkpoint.load_model` from a checkpoint of `train.ensemble` > 1 members.
"""

from __future__ import annotations

import torch
from torch import nn


class SeedEnsemble(nn.Module):
    """The members of one checkpoint, scored as one model (an `nn.Module` like each member)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> log of the members' mean class probabilities (B, n_classes)."""
        probabilities = torch.stack([member(features).float().softmax(dim=1)
                                     for member in self.members])   # (M, B, n_classes)
        return probabilities.mean(dim=0).log()

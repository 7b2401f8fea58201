"""Factorised hierarchical VAE (Hsu, Zhang & Glass, NeurIPS 2017, "Unsupervised Learning
of Disentangled and Interpretable Representations from Sequential Data").

A sequence (utterance) i is cut into segments x^(i,n), each L frames of F mel bins.
Every segment has two latents:
- z1, segment-level (content): prior p(z1) = N(0, I);
- z2, sequence-level (utterance attributes: speaker, channel, emotion):
  prior p(z2 | mu2_i) = N(mu2_i, sigma_z2^2 I), where mu2_i is one vector per utterance,
  itself with prior p(mu2) = N(0, sigma_mu2^2 I).
Inference, as in the paper: q(z2|x) from an LSTM over the frames, q(z1|x, z2) from an LSTM
over the frames with z2 appended to each, and the decoder p(x|z1, z2) an LSTM fed
[z1, z2] at every frame, giving a Gaussian (mean and log-variance) per frame.

For the training utterances mu2 is a lookup table (`mu2_table`), learnt by gradient.
The objective per segment is the segment ELBO plus (1/N_i) log p(mu2_i) plus the
discriminative term alpha * log p(i | z2), where
    log p(i | z2) = log p(z2 | mu2_i) - log sum_j p(z2 | mu2_j)
is a log-softmax over all training utterances' mu2 (the paper's eq. 7): it stops z2
from collapsing to the prior and makes it carry what tells utterances apart.

For any utterance (training or not) mu2 is estimated in closed form from the posterior
means of its N segments' z2 (the paper's section 3.3):
    mu2 = sum_n E[z2^(n)] / (N + sigma_z2^2 / sigma_mu2^2)
and that estimate is the utterance representation.

Semi-supervised variant: an optional linear emotion classifier on z2, trained with
cross-entropy on the labelled segments only (label -1 means unlabelled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .vae import gaussian_kl, gaussian_log_density, reparameterise

UNLABELLED = -1


@dataclass(frozen=True)
class FHVAEConfig:
    n_mels: int               # F: mel bins per frame
    hidden: int               # H: LSTM units of each encoder and of the decoder
    z1_dim: int               # D1: segment-level latent
    z2_dim: int               # D2: sequence-level latent
    z2_prior_std: float       # sigma_z2 of p(z2 | mu2) (0.5 in the paper)
    mu2_prior_std: float      # sigma_mu2 of p(mu2) (1.0 in the paper)
    alpha: float              # weight of the discriminative term log p(i | z2)
    n_classes: int            # emotion classes of the head on z2; 0 = no head
    supervised_weight: float  # weight of the head's cross-entropy


class FHVAE(nn.Module):
    def __init__(self, config: FHVAEConfig, n_sequences: int):
        super().__init__()
        self.config = config
        c = config
        self.z2_encoder = nn.LSTM(c.n_mels, c.hidden, batch_first=True)
        self.z2_posterior = nn.Linear(c.hidden, 2 * c.z2_dim)
        self.z1_encoder = nn.LSTM(c.n_mels + c.z2_dim, c.hidden, batch_first=True)
        self.z1_posterior = nn.Linear(c.hidden, 2 * c.z1_dim)
        self.decoder = nn.LSTM(c.z1_dim + c.z2_dim, c.hidden, batch_first=True)
        self.likelihood = nn.Linear(c.hidden, 2 * c.n_mels)
        self.mu2_table = nn.Embedding(n_sequences, c.z2_dim)  # (S, D2), one row per utterance
        nn.init.zeros_(self.mu2_table.weight)
        self.classifier = nn.Linear(c.z2_dim, c.n_classes) if c.n_classes else None

    # ---------------------------------------------------------------- the three networks
    def encode_z2(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, L, F), frames first -> mu, logvar: (B, D2), from the last hidden state
        _, (h, _) = self.z2_encoder(x)
        return self.z2_posterior(h[-1]).chunk(2, dim=-1)

    def encode_z1(self, x: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, L, F), z2: (B, D2) -> mu, logvar: (B, D1)
        z2_frames = z2.unsqueeze(1).expand(-1, x.shape[1], -1)           # (B, L, D2)
        _, (h, _) = self.z1_encoder(torch.cat([x, z2_frames], dim=-1))
        return self.z1_posterior(h[-1]).chunk(2, dim=-1)

    def decode(self, z1: torch.Tensor, z2: torch.Tensor, frames: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        # z1: (B, D1), z2: (B, D2) -> mean, logvar of x: (B, L, F)
        z = torch.cat([z1, z2], dim=-1).unsqueeze(1).expand(-1, frames, -1)  # (B, L, D1+D2)
        out, _ = self.decoder(z)                                          # (B, L, H)
        return self.likelihood(out).chunk(2, dim=-1)

    # ---------------------------------------------------------------- the objective
    def forward(self, x: torch.Tensor, sequence: torch.Tensor, sequence_segments: torch.Tensor,
                label: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss terms of a batch of segments, each averaged over the batch.

        x: (B, F, L) segments (as the beta-VAE takes them); sequence: (B,) row of each
        segment's utterance in `mu2_table`; sequence_segments: (B,) N_i, the segment count
        of that utterance; label: (B,) emotion class of the segment's utterance, -1 when
        unlabelled.
        """
        c = self.config
        x = x.transpose(1, 2)                                             # (B, L, F) for the LSTMs
        z2_logvar_prior = 2 * math.log(c.z2_prior_std)
        mu2_logvar_prior = 2 * math.log(c.mu2_prior_std)

        z2_mu, z2_logvar = self.encode_z2(x)                              # (B, D2)
        z2 = reparameterise(z2_mu, z2_logvar)
        z1_mu, z1_logvar = self.encode_z1(x, z2)                          # (B, D1)
        z1 = reparameterise(z1_mu, z1_logvar)
        x_mu, x_logvar = self.decode(z1, z2, x.shape[1])                  # (B, L, F)

        mu2 = self.mu2_table(sequence)                                    # (B, D2)
        log_px = gaussian_log_density(x, x_mu, x_logvar).flatten(1).sum(-1)            # (B,)
        kl_z1 = gaussian_kl(z1_mu, z1_logvar).sum(-1)                                  # (B,)
        kl_z2 = gaussian_kl(z2_mu, z2_logvar, mu2, z2_logvar_prior).sum(-1)            # (B,)
        log_pmu2 = gaussian_log_density(mu2, 0.0, mu2_logvar_prior).sum(-1)            # (B,)
        elbo = log_px - kl_z1 - kl_z2 + log_pmu2 / sequence_segments

        # log p(i | z2): log-softmax of log N(z2; mu2_j, sigma_z2^2) over all utterances j
        table = self.mu2_table.weight                                     # (S, D2)
        logits = gaussian_log_density(z2.unsqueeze(1), table.unsqueeze(0),
                                      z2_logvar_prior).sum(-1)             # (B, S)
        log_p_sequence = -F.cross_entropy(logits, sequence, reduction="none")          # (B,)

        loss = -(elbo + c.alpha * log_p_sequence)
        terms = {"log_px": log_px.mean(), "kl_z1": kl_z1.mean(), "kl_z2": kl_z2.mean(),
                 "log_pmu2": log_pmu2.mean(), "log_p_sequence": log_p_sequence.mean(),
                 "x_hat": x_mu.transpose(1, 2), "z2_mu": z2_mu, "z1_mu": z1_mu}

        if self.classifier is not None and label is not None:
            labelled = label != UNLABELLED
            if labelled.any():
                ce = F.cross_entropy(self.classifier(z2[labelled]), label[labelled])
            else:
                ce = z2.new_zeros(())
            terms["classifier_ce"] = ce
            loss = loss.mean() + c.supervised_weight * ce
        else:
            loss = loss.mean()
        terms["loss"] = loss
        return terms

    # ---------------------------------------------------------------- representations
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means E[z1], E[z2] of segments x: (B, F, L) -> (B, D1), (B, D2)."""
        x = x.transpose(1, 2)                                             # (B, L, F)
        z2_mu, _ = self.encode_z2(x)
        z1_mu, _ = self.encode_z1(x, z2_mu)
        return z1_mu, z2_mu

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior means: (B, F, L) -> (B, F, L)."""
        z1_mu, z2_mu = self.encode(x)
        x_mu, _ = self.decode(z1_mu, z2_mu, x.shape[-1])                  # (B, L, F)
        return x_mu.transpose(1, 2)

    def estimate_mu2(self, z2_mu: torch.Tensor) -> torch.Tensor:
        """Closed-form mu2 of one utterance from its segments' E[z2]: (N, D2) -> (D2,)."""
        c = self.config
        ratio = (c.z2_prior_std / c.mu2_prior_std) ** 2
        return z2_mu.sum(0) / (z2_mu.shape[0] + ratio)

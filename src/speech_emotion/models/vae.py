"""beta-VAE over fixed-size log-mel segments (Higgins et al., ICLR 2017).

A convolutional encoder maps one segment (n_mels x segment_frames) to the mean and
log-variance of a diagonal Gaussian posterior q(z|x); a transposed-convolution decoder
maps a sample z back to the segment. The likelihood p(x|z) is a unit-variance Gaussian
on the (normalised) log-mel values, the prior p(z) is N(0, I), and the KL term is
weighted by beta. An utterance's representation is the mean of its segments' posterior
means (see `speech_emotion.representation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class BetaVAEConfig:
    n_mels: int               # F: mel bins of a segment
    segment_frames: int       # L: frames of a segment
    channels: tuple[int, ...]  # conv channels; each conv halves F and L
    latent_dim: int           # D: size of z
    beta: float               # weight of KL(q(z|x) || p(z))

    def __post_init__(self):
        factor = 2 ** len(self.channels)
        if self.n_mels % factor or self.segment_frames % factor:
            raise ValueError(
                f"beta_vae: n_mels ({self.n_mels}) and segment_frames ({self.segment_frames}) "
                f"must be multiples of 2**len(channels) = {factor}")


class BetaVAE(nn.Module):
    def __init__(self, config: BetaVAEConfig):
        super().__init__()
        self.config = config
        factor = 2 ** len(config.channels)
        self.bottom = (config.channels[-1], config.n_mels // factor,
                       config.segment_frames // factor)
        flat = math.prod(self.bottom)

        layers, c_in = [], 1
        for c_out in config.channels:                         # (B, c, F, L) -> (B, c', F/2, L/2)
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        self.encoder = nn.Sequential(*layers, nn.Flatten())  # (B, flat)
        self.posterior = nn.Linear(flat, 2 * config.latent_dim)

        self.expand = nn.Linear(config.latent_dim, flat)
        layers = []
        reverse = list(config.channels[::-1]) + [1]
        # (B, c, f, l) -> (B, c', 2f, 2l)
        for c_in, c_out in zip(reverse[:-1], reverse[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*layers[:-1])             # no ReLU on the output

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, F, L) -> mu, logvar: (B, D)
        h = self.encoder(x.unsqueeze(1))
        mu, logvar = self.posterior(h).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, D) -> x_hat: (B, F, L)
        h = F.relu(self.expand(z)).view(-1, *self.bottom)
        return self.decoder(h).squeeze(1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output at the posterior mean: (B, F, L) -> (B, F, L)."""
        return self.decode(self.encode(x)[0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ELBO terms of a batch of segments x: (B, F, L), each averaged over the batch."""
        mu, logvar = self.encode(x)
        z = reparameterise(mu, logvar)                         # (B, D)
        x_hat = self.decode(z)                                 # (B, F, L)
        # log p(x|z) under N(x_hat, I), summed over the F*L values of a segment
        log_px = -0.5 * ((x - x_hat) ** 2 + LOG_2PI).flatten(1).sum(-1)
        kl = gaussian_kl(mu, logvar).sum(-1)                   # KL(q(z|x) || N(0, I))
        loss = -log_px + self.config.beta * kl
        return {"loss": loss.mean(), "log_px": log_px.mean(), "kl": kl.mean(),
                "x_hat": x_hat, "mu": mu}


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, differentiable in mu and logvar."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor,
                prior_mu: torch.Tensor | float = 0.0, prior_logvar: torch.Tensor | float = 0.0
                ) -> torch.Tensor:
    """Elementwise KL(N(mu, e^logvar) || N(prior_mu, e^prior_logvar))."""
    prior_logvar = torch.as_tensor(prior_logvar, dtype=mu.dtype, device=mu.device)
    return 0.5 * (prior_logvar - logvar
                  + (torch.exp(logvar) + (mu - prior_mu) ** 2) / torch.exp(prior_logvar) - 1)


def gaussian_log_density(x: torch.Tensor, mu: torch.Tensor | float,
                         logvar: torch.Tensor | float) -> torch.Tensor:
    """Elementwise log N(x; mu, e^logvar)."""
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    return -0.5 * (LOG_2PI + logvar + (x - mu) ** 2 / torch.exp(logvar))

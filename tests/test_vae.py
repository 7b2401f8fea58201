"""The VAEs and the representation code: ELBO terms, reparameterisation, learning,
determinism, the latent table's alignment with data.csv, and what a fold may learn from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech_emotion import latents as latents_module, representation
from speech_emotion.folds import make_folds, split_rows
from speech_emotion.models.fhvae import FHVAE, FHVAEConfig
from speech_emotion.models.vae import BetaVAE, BetaVAEConfig, reparameterise

from _representation_data import corpus_table, tiny_params, toy_features

ACTORS = (1, 2, 3, 4, 11, 12)       # EmoBox fold 1 tests actors 1 and 11 of these


def _beta_vae(beta=1.0):
    return BetaVAE(BetaVAEConfig(n_mels=16, segment_frames=8, channels=(4, 8), latent_dim=4,
                                 beta=beta))


def _fhvae(n_sequences=6, n_classes=0, weight=0.0):
    return FHVAE(FHVAEConfig(n_mels=16, hidden=8, z1_dim=3, z2_dim=3, z2_prior_std=0.5,
                             mu2_prior_std=1.0, alpha=10.0, n_classes=n_classes,
                             supervised_weight=weight), n_sequences)


def _segments(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    sequence = torch.arange(n) % 6
    x = torch.randn(n, 16, 8, generator=g) * 0.3 + sequence[:, None, None].float() / 3
    return x, sequence


def _fit(model, steps=40):
    torch.manual_seed(0)
    x, sequence = _segments()
    count = torch.bincount(sequence).float()[sequence]
    label = sequence % 3
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        terms = model(x) if isinstance(model, BetaVAE) else model(x, sequence, count, label)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(float(terms["loss"].detach()))
    return terms, losses


@pytest.mark.parametrize("make", [_beta_vae, _fhvae, lambda: _fhvae(n_classes=3, weight=1.0)],
                         ids=["beta_vae", "fhvae", "ss_fhvae"])
def test_elbo_terms_finite_and_loss_falls(make):
    torch.manual_seed(0)      # the initial weights too, whatever ran before this test
    terms, losses = _fit(make(), steps=80)
    scalars = {k: float(v.detach()) for k, v in terms.items() if v.dim() == 0}
    assert all(np.isfinite(v) for v in scalars.values()), scalars
    assert min(scalars.get("kl", 0), scalars.get("kl_z1", 0), scalars.get("kl_z2", 0)) >= 0
    assert terms["x_hat"].shape == (48, 16, 8)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_reparameterisation_is_differentiable():
    mu = torch.zeros(5, 3, requires_grad=True)
    logvar = torch.zeros(5, 3, requires_grad=True)
    torch.manual_seed(0)
    z = reparameterise(mu, logvar)
    (z ** 2).sum().backward()
    assert torch.isfinite(mu.grad).all() and mu.grad.abs().sum() > 0
    assert torch.isfinite(logvar.grad).all() and logvar.grad.abs().sum() > 0
    # and gradients reach the encoders through both ELBOs
    for model in (_beta_vae(), _fhvae()):
        x, sequence = _segments(12)
        terms = (model(x) if isinstance(model, BetaVAE)
                 else model(x, sequence, torch.full((12,), 2.0)))
        terms["loss"].backward()
        first = next(model.parameters())
        assert first.grad is not None and first.grad.abs().sum() > 0


def test_fhvae_discriminative_term_is_a_log_softmax_over_utterances():
    model = _fhvae(n_sequences=4)
    with torch.no_grad():
        model.mu2_table.weight.copy_(torch.eye(4, 3) * 50)    # four far-apart utterances
    x, _ = _segments(8)
    with torch.no_grad():
        terms = model(x, torch.zeros(8, dtype=torch.long), torch.full((8,), 8.0))
        # z2 near the origin is far more likely under utterance 3's mu2 (row 3 is all zero)
        terms3 = model(x, torch.full((8,), 3, dtype=torch.long), torch.full((8,), 8.0))
    assert float(terms["log_p_sequence"]) <= 0.0
    assert float(terms3["log_p_sequence"]) > float(terms["log_p_sequence"])


def test_encode_uses_the_papers_closed_form_mu2():
    model = _fhvae()
    x, owner = _segments(12)
    groups = representation.encode(model, x, owner, 6)
    _, z2_mu = model.encode(x)
    for i in range(6):
        expected = model.estimate_mu2(z2_mu[owner == i].detach())
        assert torch.allclose(torch.from_numpy(groups["z2"][i]), expected, atol=1e-6)
    assert groups["z1"].shape == (6, 3)


def test_segment_shapes_and_owners():
    features = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    segments, owner = representation.segment(features, 4)
    assert segments.shape == (4, 3, 4)                    # 2 segments each, tail of 2 dropped
    assert owner.tolist() == [0, 0, 1, 1]
    assert torch.equal(segments[1], torch.from_numpy(features[0, :, 4:8]))
    with pytest.raises(representation.RepresentError, match="shorter than one segment"):
        representation.segment(features, 11)


def test_beta_vae_config_refuses_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="multiples of"):
        BetaVAEConfig(n_mels=16, segment_frames=6, channels=(4, 8), latent_dim=4, beta=1.0)


@pytest.fixture(scope="module")
def data():
    table = corpus_table(ACTORS)
    return table, toy_features(table)


@pytest.mark.parametrize("variant", representation.VARIANTS)
def test_latent_table_lines_up_with_data_csv(data, variant):
    table, features = data
    p = tiny_params()
    cell = representation.represent_cell(variant, "strong", table, features, p,
                                         progress=False, log=lambda *a, **k: None)
    strong = table[table["intensity_name"] == "strong"]
    latents = cell.results[0].latents
    assert latents["stem"].tolist() == strong["stem"].tolist()
    groups = latents_module.group_columns(latents)
    assert tuple(groups) == representation.GROUPS[variant]
    assert np.isfinite(latents[sum(groups.values(), [])].to_numpy()).all()


def test_training_is_deterministic_on_cpu(data):
    table, features = data
    p = tiny_params()
    runs = [representation.represent_cell("ss_fhvae", "strong", table, features, p,
                                          progress=False, log=lambda *a, **k: None)
            for _ in range(2)]
    assert runs[0].results[0].latents.equals(runs[1].results[0].latents)
    first, second = (r.results[0].checkpoint["state_dict"] for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("variant", ["beta_vae", "ss_fhvae"])
def test_test_actors_never_reach_training(data, variant):
    """Changing the test actors' audio and labels changes nothing the fold learnt
    (transductive off); with transductive on, their audio does, their labels still not."""
    table, features = data
    strong = (table["intensity_name"] == "strong").to_numpy()
    table, features = table[strong].reset_index(drop=True), features[strong]
    fold = make_folds(table["actor"], "emobox", [1], 2, 0)[0]
    test = split_rows(table, fold).test
    other_features = features.copy()
    other_features[test] = np.random.default_rng(1).normal(5, 3, other_features[test].shape)
    other_table = table.copy()
    other_table.loc[test, "emotion_name"] = np.roll(table.loc[test, "emotion_name"].to_numpy(), 7)

    def learnt(t, f, transductive=False):
        p = tiny_params(**{"represent.transductive": transductive}).represent
        result = representation.represent_fold(variant, f, t, fold, "strong", p, progress=False)
        return result.checkpoint

    base = learnt(table, features)
    changed = learnt(other_table, other_features)
    assert all(torch.equal(base["state_dict"][k], changed["state_dict"][k])
               for k in base["state_dict"])
    assert torch.equal(base["normalisation"]["mean"], changed["normalisation"]["mean"])

    audio = learnt(table, features, True)
    audio_changed = learnt(table, other_features, True)
    assert not all(torch.equal(audio["state_dict"][k], audio_changed["state_dict"][k])
                   for k in audio["state_dict"])
    labels_changed = learnt(other_table, features, True)
    assert all(torch.equal(audio["state_dict"][k], labels_changed["state_dict"][k])
               for k in audio["state_dict"])

"""Label-prior correction (Saerens et al. 2002): EM finds a skewed corpus's priors from
calibrated probabilities alone, and the re-weighted probabilities predict it better."""

import numpy as np
import pytest

from speech_emotion.priors import em_priors


def calibrated(priors, n=6000, seed=0):
    """Three classes, 1-D Gaussians at -2, 0, 2 (sd 1.2): labels drawn with `priors` and
    the exact posteriors under uniform training priors."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=priors)
    x = rng.normal(np.array([-2.0, 0.0, 2.0])[y], 1.2)
    log_like = -0.5 * ((x[:, None] - np.array([-2.0, 0.0, 2.0])) / 1.2) ** 2
    p = np.exp(log_like - log_like.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), y


def test_em_recovers_skewed_priors_and_helps_accuracy():
    truth = np.array([0.7, 0.2, 0.1])
    p, y = calibrated(truth)
    q, adjusted, iterations = em_priors(p)
    assert np.abs(q - truth).max() < 0.03 and iterations > 1
    assert (adjusted.argmax(1) == y).mean() > (p.argmax(1) == y).mean() + 0.02
    np.testing.assert_allclose(adjusted.sum(axis=1), 1.0)


def test_balanced_corpus_is_left_nearly_alone():
    p, y = calibrated(np.full(3, 1 / 3), seed=1)
    q, adjusted, _ = em_priors(p)
    assert np.abs(q - 1 / 3).max() < 0.03
    assert (adjusted.argmax(1) == p.argmax(1)).mean() > 0.97


def test_no_label_is_needed_and_zero_probabilities_are_safe():
    p = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    q, adjusted, _ = em_priors(p)
    assert q.sum() == pytest.approx(1.0) and np.isfinite(adjusted).all()

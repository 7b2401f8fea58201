"""Label-prior correction: re-estimate a corpus's class priors from a model's unlabelled
probabilities by EM, and re-weight the probabilities to them (Saerens, Latinne and
Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori probabilities").

A classifier trained with balanced classes outputs p(c | x) under uniform priors. On a
corpus whose classes are not balanced, or that the model sees through a shifted lens (it
calls most recordings by one or two classes), the posteriors under the corpus's own
priors q(c) are

    p'(c | x) = q(c) / p(c) * p(c | x), renormalised over c

and q is the fixed point of q(c) = mean over the corpus of p'(c | x), reached by EM from
q = p. It needs the whole corpus's probabilities, never a label: the `external` stage
offers it as an option (`external.prior_correction`), off by default, because a score
that looked at the whole test corpus is not what `predict` on one file gets.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-6     # stop when no prior moves by more than this
MAX_ITERATIONS = 1000
FLOOR = 1e-12        # no class's prior or probability reaches exactly zero


def em_priors(probabilities: np.ndarray, train_priors: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """`(N, C)` probabilities under `train_priors` (C,; uniform by default) -> the corpus's
    priors (C,), the re-weighted probabilities (N, C) and the EM iterations run."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), FLOOR, None)
    p /= p.sum(axis=1, keepdims=True)
    n_classes = p.shape[1]
    base = (np.full(n_classes, 1.0 / n_classes) if train_priors is None
            else np.asarray(train_priors, dtype=np.float64))
    q, iterations = base.copy(), 0

    def reweighted(priors: np.ndarray) -> np.ndarray:
        adjusted = p * (priors / base)
        return adjusted / adjusted.sum(axis=1, keepdims=True)

    while iterations < MAX_ITERATIONS:           # E: posteriors; M: their mean
        iterations += 1
        new = np.clip(reweighted(q).mean(axis=0), FLOOR, None)
        new /= new.sum()
        moved, q = np.abs(new - q).max(), new
        if moved < TOLERANCE:
            break
    return q, reweighted(q), iterations

"""Acceptance that adapts to the job: how many of its items have a counterpart at all.

The match score is calibrated (``benchmarks/fit_scoring.py``) on catalogs that lack
most items' counterparts, where about :data:`BASE_PRIOR` of the items' best
candidates are right. A job whose catalog holds nearly every item's counterpart
deserves more trust in the same evidence, one whose catalog holds few deserves less.

:func:`prior_shift` estimates the job's own share of right best candidates from the
scores of its items' best candidates alone (the EM re-estimation of a class prior of
Saerens, Latinne and Decaestecker, 2002: only the prior is re-estimated, the evidence
model stays fixed) and returns the shift of the logit that moves every score of the
job to that prior. It is computed once per job (with its peers, see
:meth:`matching.CatalogIndex.peers`), so a chunk's results never depend on which
items share it. A small job moves little: the estimate is shrunk towards the
default as if :data:`PRIOR_PSEUDO_ITEMS` items had shown the default share.
"""

from __future__ import annotations

import math

import numpy as np

BASE_PRIOR = 0.25
"""Share of right best candidates on the data the score is calibrated on."""

PRIOR_PSEUDO_ITEMS = 300.0
"""Weight of the default prior in a job's estimate, as a number of items."""

MAX_PRIOR_SHIFT = 2.0
"""Largest logit shift a job's own prior may apply, either way.

A job whose items nearly all have a counterpart moves every item's score up, the ones
that have none with them: with 3.0 a job of 5,000 people and 500 one-word items (a
surname, a street name; ``benchmarks/unseen_sets.py``) matched 210 of those words. With
2.0 it matches none, DBLP-ACM's F1 rises from 0.971 to 0.976 (fewer wrong matches)
and Abt-Buy's falls from 0.934 to 0.932; the open-world variants do not reach the cap."""

_ITERATIONS = 200
_TOLERANCE = 1e-6


def prior_shift(logits: np.ndarray, *, base_prior: float = BASE_PRIOR) -> float:
    """The logit shift that moves scores calibrated at ``base_prior`` to the job's prior.

    ``logits`` are the raw (unshifted) logits of the job's items' best candidates.

    >>> round(prior_shift(np.array([])), 6)
    0.0
    >>> many_right = np.full(2000, 3.0)
    >>> prior_shift(many_right) > 1.0
    True
    >>> few_right = np.full(2000, -4.0)
    >>> prior_shift(few_right) < -1.0
    True
    """
    logits = np.asarray(logits, dtype=float)
    if not len(logits):
        return 0.0
    p = 1.0 / (1.0 + np.exp(-logits))
    prior = base_prior
    for _ in range(_ITERATIONS):
        right = prior / base_prior * p
        wrong = (1.0 - prior) / (1.0 - base_prior) * (1.0 - p)
        posterior = right / (right + wrong)
        updated = (posterior.sum() + PRIOR_PSEUDO_ITEMS * base_prior) / (
            len(p) + PRIOR_PSEUDO_ITEMS
        )
        done = abs(updated - prior) < _TOLERANCE
        prior = updated
        if done:
            break
    prior = min(max(prior, 1e-4), 1.0 - 1e-4)
    shift = _logit(prior) - _logit(base_prior)
    return float(min(max(shift, -MAX_PRIOR_SHIFT), MAX_PRIOR_SHIFT))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))

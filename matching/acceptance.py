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

:func:`valley_relaxation` then looks at the shape of the same scores: right and wrong
best candidates form two populations. Where the valley between them lies below the
default threshold (two sides of different fields score every right pair lower than the
data the score was calibrated on), the job's threshold moves down to it, never up.

:func:`optimum_raise` is the other way: where the valley does not move the threshold,
the job's calibrated scores say where its own F1 is best (a pair is worth accepting
when its probability of being right exceeds half the F1 the job can reach; Lipton,
Elkan and Naryanaswamy, 2014). A job whose items are mostly easy to tell apart
reaches a high F1, so its uncertain pairs, at a probability of 0.3, cost more
precision than they bring recall, and its threshold moves up, part of the way
(:data:`JOB_OPTIMUM_WEIGHT`).

:func:`job_shift` is the three together, the one shift :meth:`matching.CatalogIndex.peers`
stores for the job.
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


MIN_RELAX_ITEMS = 20
"""A job with fewer best candidates than this is never relaxed (no valley to see) nor raised."""

RELAX_PSEUDO_ITEMS = 100.0
"""A job's relaxation or raise is scaled by n / (n + this): a small job moves little."""

MAX_RELAXATION = 2.0
"""Largest logit a job's valley may lower its threshold by."""

MIN_COMPONENT_SD = 1.0
"""Smallest spread (in logits) of either population of a job's best scores.

Without a floor a tight cluster of equal scores (many items sharing one record, a
run of exact duplicates) becomes a component of its own and puts the valley
anywhere. Measured on ``benchmarks/unseen_sets.py``'s open-world layouts
(restaurants two ways, four DBLP-ACM layouts): floor 0.5 gives 0.923 / 0.921 and
0.920 / 0.930 / 0.947 / 0.928; 1.0 gives 0.921 / 0.907 and 0.931 / 0.911 / 0.936 /
0.935; 1.3 gives 0.921 / 0.907 and 0.879 / 0.856 / 0.894 / 0.920."""

_CUT_GRID = 1000
_EM_ITERATIONS = 200


def job_shift(logits: np.ndarray, *, threshold: float, base_prior: float = BASE_PRIOR) -> float:
    """The job's whole logit shift: its prior (:func:`prior_shift`), then, on the logits
    the prior has moved, its valley (:func:`valley_relaxation`) when that lowers the
    threshold, else part of the way up to its own F1 optimum (:func:`optimum_raise`).

    >>> job_shift(np.array([]), threshold=0.26)
    0.0
    """
    logits = np.asarray(logits, dtype=float)
    shift = prior_shift(logits, base_prior=base_prior)
    moved = logits + shift
    relaxation = valley_relaxation(moved, threshold=threshold)
    if relaxation > 0.0:
        return shift + relaxation
    return shift - JOB_OPTIMUM_WEIGHT * optimum_raise(moved, threshold=threshold)


JOB_OPTIMUM_WEIGHT = 0.5
"""Share of the way a job's threshold moves up to its own F1 optimum (:func:`optimum_raise`).

The optimum assumes the scores are calibrated on the job itself, and across data sets
they are not quite (on Abt-Buy the pairs scoring 0.26-0.48 are right more often than
their score says, on DBLP-ACM less often). Measured over the visible sets, their
open-world variants, the unseen sets and layouts of ``benchmarks/unseen_sets.py``
and the synthetic 20k set (``benchmarks/synthetic.py``), 38 jobs: weight 0 gives a
mean F1 of 0.884 and 4,788 wrong matches, 0.5 gives 0.883 and 4,082, 1.0 gives 0.881
and 3,439, but at 1.0 Abt-Buy falls from 0.932 to 0.927 and people from 1.000 to
0.999, which 0.5 keeps (0.933, 1.000)."""


def optimum_raise(logits: np.ndarray, *, threshold: float) -> float:
    """How far (in logits, ≥ 0) the job's own F1-optimal threshold lies above ``threshold``.

    ``logits`` are the (prior-shifted) logits of the job's items' best candidates,
    read as calibrated probabilities ``p``. Accepting the ``k`` most probable pairs
    brings ``sum(p[:k])`` right matches in expectation out of ``sum(p)`` items with a
    counterpart, for an expected F1 of ``2 sum(p[:k]) / (k + sum(p))``; with the best
    such F1, a pair pays only when its probability exceeds F1 / 2. The raise is the
    distance from ``threshold`` up to that point, shrunk by ``n / (n +
    RELAX_PSEUDO_ITEMS)``, nothing for jobs under :data:`MIN_RELAX_ITEMS` items, and
    never more than the distance to 0.5.

    >>> rng = np.random.default_rng(0)
    >>> easy = np.r_[rng.normal(-6.0, 1.0, 300), rng.normal(5.0, 1.0, 700)]
    >>> 0.8 < optimum_raise(easy, threshold=0.26) <= -_logit(0.26)
    True
    >>> hard = rng.normal(-1.5, 1.0, 1000)  # a job that cannot reach a high F1
    >>> optimum_raise(hard, threshold=0.26) < 0.3
    True
    >>> optimum_raise(np.full(5, 3.0), threshold=0.26)
    0.0
    """
    z = np.asarray(logits, dtype=float)
    n = len(z)
    if n < MIN_RELAX_ITEMS:
        return 0.0
    p = np.sort(1.0 / (1.0 + np.exp(-z)))[::-1]
    expected_f1 = 2.0 * np.cumsum(p) / (np.arange(1, n + 1) + p.sum())
    best = float(expected_f1.max()) / 2.0
    if best <= threshold:
        return 0.0
    return float((_logit(best) - _logit(threshold)) * n / (n + RELAX_PSEUDO_ITEMS))


def valley_relaxation(logits: np.ndarray, *, threshold: float) -> float:
    """How far (in logits, ≥ 0) the job's own score distribution lowers its threshold.

    ``logits`` are the (prior-shifted) logits of the job's items' best candidates.
    They form two populations, right and wrong pairs; a two-component Gaussian
    mixture fitted to them (EM, started from each score's own probability) puts the
    cut where a score becomes more likely right than wrong. When the job's right
    pairs all score lower than the data the default was calibrated on (a layout
    whose fields differ between the sides), that cut lies below the default
    threshold and the job's items between the two are admitted: the threshold moves
    down to the lowest of them. It only ever moves down, by at most
    :data:`MAX_RELAXATION`, shrunk by ``n / (n + RELAX_PSEUDO_ITEMS)``; the prior
    (:func:`prior_shift`) already moves a job whose items mostly lack counterparts
    the other way.

    >>> rng = np.random.default_rng(0)
    >>> low_right = np.r_[rng.normal(-5.0, 1.0, 600), rng.normal(-0.5, 0.5, 400)]
    >>> valley_relaxation(low_right, threshold=0.26) > 0.3
    True
    >>> clear = np.r_[rng.normal(-5.0, 1.0, 600), rng.normal(4.0, 1.0, 400)]
    >>> valley_relaxation(clear, threshold=0.26)
    0.0
    >>> valley_relaxation(np.zeros(5), threshold=0.26)
    0.0
    """
    z = np.asarray(logits, dtype=float)
    n = len(z)
    if n < MIN_RELAX_ITEMS:
        return 0.0
    t = _logit(threshold)
    fitted = _components(z)
    if fitted is None:
        return 0.0
    (low_mean, _, _), (high_mean, _, _) = fitted
    grid = np.linspace(low_mean, high_mean, _CUT_GRID)
    upper = _upper_posterior(grid, fitted)
    above = np.flatnonzero(upper >= 0.5)
    if not len(above):
        return 0.0
    cut = grid[above[0]]
    admitted = z[z >= cut]
    if not len(admitted):
        return 0.0
    relaxation = (t - admitted.min()) * n / (n + RELAX_PSEUDO_ITEMS)
    return float(min(max(relaxation, 0.0), MAX_RELAXATION))


Component = tuple[float, float, float]
"""A mixture component: mean, standard deviation, weight."""


def _components(z: np.ndarray) -> tuple[Component, Component] | None:
    """The lower and upper components of a two-Gaussian mixture fitted to ``z`` (None
    when the fit collapses to one)."""
    r = 1.0 / (1.0 + np.exp(-z))  # responsibility of the upper component
    previous = None
    for _ in range(_EM_ITERATIONS):
        parts = []
        for resp in (1.0 - r, r):
            weight = resp.sum()
            if weight < 1e-9:
                return None
            mean = float((resp * z).sum() / weight)
            sd = math.sqrt(float((resp * (z - mean) ** 2).sum() / weight))
            parts.append((mean, max(sd, MIN_COMPONENT_SD), float(weight / len(z))))
        fitted = (min(parts), max(parts))  # by mean: the lower first
        if previous is not None and np.allclose(fitted, previous, rtol=0.0, atol=_TOLERANCE):
            break
        previous = fitted
        r = _upper_posterior(z, fitted)
    if fitted[1][0] - fitted[0][0] < 1e-6:
        return None
    return fitted


def _upper_posterior(x: np.ndarray, fitted: tuple[Component, Component]) -> np.ndarray:
    """P(upper component | x) under the fitted mixture."""
    (m0, s0, w0), (m1, s1, w1) = fitted
    log0 = math.log(w0) - math.log(s0) - 0.5 * ((x - m0) / s0) ** 2
    log1 = math.log(w1) - math.log(s1) - 0.5 * ((x - m1) / s1) ** 2
    return 1.0 / (1.0 + np.exp(np.clip(log0 - log1, -700, 700)))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))

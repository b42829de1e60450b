"""A project's acceptance, re-fitted from its reviewers' decisions.

The default score is a calibrated probability on the data it was fitted on
(:mod:`matching.scoring`); a project's data may be easier or harder. Its reviewers'
decisions label the pairs its jobs proposed (right or wrong), and :func:`fit_calibration`
re-fits the map from the default score to the chance of being right,
``sigmoid(intercept + slope * logit(score))``, by maximum a posteriori: the default map
(intercept 0, slope 1) is a Gaussian prior, so that a few labels move it a little and many
move it more. The acceptance keeps its meaning: a pair is accepted when its re-fitted
chance reaches the default threshold, which is a threshold on the default score
(:attr:`Calibration.threshold`), the same for every chunk of a job.

Labels come from the review queue, which asks about the most uncertain pairs first: a
sample chosen by score, which leaves the fit of the chance *given* the score unbiased.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from matching.acceptance import JOB_OPTIMUM_WEIGHT
from matching.index import DEFAULT_THRESHOLD

MIN_LABELS = 20
"""Decisions a project needs before its acceptance is re-fitted."""

PRIOR_SD_INTERCEPT = 1.0
"""Prior standard deviation of the intercept (logits) around the default's 0."""

PRIOR_SD_SLOPE = 0.5
"""Prior standard deviation of the slope around the default's 1."""

MIN_SLOPE = 0.2
"""Slopes below this (a score that hardly tells) are held at it: the map stays increasing."""

_EPS = 1e-6
_ITERATIONS = 100
MAX_STEP = 2.0  # largest Newton step per parameter (logits): keeps far labels from overshooting

MAX_EXTRAPOLATION = 1.0
"""How far (logits) the re-fitted threshold may move beyond the scores reviewers labelled.

The fit is a line in logits, and the queue's labels lie near the default threshold: where
they are nearly all right (or all wrong) the line says nothing about scores far from
them, yet its threshold can land there. ``benchmarks/review_learning.py --shifts``
measures it on defaults made wrong on purpose (every logit shifted by -2..+2): unbounded,
a project whose first 50 answers were 47 right moved its threshold to 0.002 and half B's
F1 fell from 0.864 to 0.577 (Abt-Buy open world, shift -2; DBLP-ACM open world 0.857 to
0.430); bounded at 1 logit, they reach 0.891 and 0.951 (0.894 and 0.983 since the lead
change of ``matching.ranking``), and no shift loses more than 0.021 against the unbounded
fit."""


@dataclass(frozen=True)
class Calibration:
    """How a project turns default scores into decisions.

    ``threshold`` is on the default score (0..1); ``intercept`` and ``slope`` map a
    default score's logit to the project's chance that the pair is right; ``labels`` is
    how many labels there were (under :data:`MIN_LABELS`, the map is the default's).

    >>> Calibration().chance(0.5), Calibration().threshold == DEFAULT_THRESHOLD
    (0.5, True)
    """

    labels: int = 0
    intercept: float = 0.0
    slope: float = 1.0
    threshold: float = DEFAULT_THRESHOLD

    def chance(self, score: float) -> float:
        """The project's chance (0..1) that a pair of default ``score`` is right."""
        return float(_sigmoid(self.intercept + self.slope * _logit(np.array([score])))[0])

    def chances(self, scores: np.ndarray) -> np.ndarray:
        return _sigmoid(self.intercept + self.slope * _logit(np.asarray(scores, dtype=float)))


def fit_calibration(
    scores: Sequence[float],
    right: Sequence[bool],
    *,
    accept_chance: float = DEFAULT_THRESHOLD,
    min_labels: int = MIN_LABELS,
) -> Calibration:
    """The calibration re-fitted from labelled pairs: their default ``scores`` and whether
    each was ``right``. Fewer than ``min_labels`` leave the default map. The threshold is the
    default score whose re-fitted chance is ``accept_chance``.

    >>> few = fit_calibration([0.3] * 5, [False] * 5)
    >>> few.labels, few.threshold == DEFAULT_THRESHOLD
    (5, True)
    >>> wrong = fit_calibration([0.3, 0.5, 0.7] * 20, [False] * 60)
    >>> wrong.threshold > DEFAULT_THRESHOLD
    True
    >>> right = fit_calibration([0.1, 0.2, 0.3] * 20, [True] * 60)
    >>> right.threshold < DEFAULT_THRESHOLD
    True

    The threshold moves at most :data:`MAX_EXTRAPOLATION` beyond the labelled scores:

    >>> all_right = fit_calibration([0.2, 0.3, 0.5] * 20, [True] * 60)
    >>> round(all_right.threshold, 3), round(float(_sigmoid(_logit(np.array([0.2])) - 1)[0]), 3)
    (0.084, 0.084)
    """
    x = _logit(np.asarray(scores, dtype=float))
    y = np.asarray(right, dtype=float)
    if len(x) != len(y):
        raise ValueError("scores and right differ in length")
    if len(x) < min_labels:
        return Calibration(labels=len(x))
    intercept, slope = _map_fit(x, y)
    cut = (float(_logit(np.array([accept_chance]))[0]) - intercept) / slope
    return Calibration(
        labels=len(x),
        intercept=intercept,
        slope=slope,
        threshold=float(_sigmoid(np.array([_bounded(cut, x, accept_chance)]))[0]),
    )


def fit_acceptance(
    scores: Sequence[float],
    right: Sequence[bool],
    histogram: Iterable[tuple[float, int]],
    *,
    weight: float = JOB_OPTIMUM_WEIGHT,
    min_labels: int = MIN_LABELS,
) -> Calibration:
    """The project's acceptance from its labelled pairs: :func:`fit_calibration`, with the
    chance a pair must reach moved ``weight`` of the way up from the default threshold to
    half the F1 the reviewed job (its best scores' ``histogram``) is expected to reach under
    the re-fitted map. A pair pays for F1 only when its chance exceeds half the F1 that can
    be reached (Lipton, Elkan and Naryanaswamy, 2014): the default's own jobs move the same
    way (:func:`matching.acceptance.optimum_raise`, by the same weight), and without it a
    re-fitted map that finds near-threshold pairs right more often than their score says
    would accept pairs right a third of the time in a job that reaches an F1 of 0.9.

    >>> scores, right = [0.2, 0.3, 0.5, 0.7] * 10, [False, True, True, True] * 10
    >>> easy = [(0.95, 900), (0.05, 100)]
    >>> fit_acceptance(scores, right, easy).threshold > fit_calibration(scores, right).threshold
    True
    >>> fit_acceptance(scores[:8], right[:8], easy) == fit_calibration(scores[:8], right[:8])
    True
    """
    calibration = fit_calibration(scores, right, min_labels=min_labels)
    if calibration.labels < min_labels:
        return calibration
    precision, recall = estimate_precision_recall(calibration, histogram)
    if not precision or not recall:
        return calibration
    half_f1 = precision * recall / (precision + recall)
    accept = DEFAULT_THRESHOLD + weight * (half_f1 - DEFAULT_THRESHOLD)
    if accept <= DEFAULT_THRESHOLD:
        return calibration
    return fit_calibration(scores, right, accept_chance=accept, min_labels=min_labels)


def _bounded(cut: float, labelled: np.ndarray, accept_chance: float) -> float:
    """The threshold's logit ``cut``, moved from the default's by at most
    :data:`MAX_EXTRAPOLATION` beyond the ``labelled`` logits on the side it moved to."""
    default = float(_logit(np.array([accept_chance]))[0])
    if cut < default:
        return max(cut, min(default, float(labelled.min()) - MAX_EXTRAPOLATION))
    return min(cut, max(default, float(labelled.max()) + MAX_EXTRAPOLATION))


def _map_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Newton's method on the negative log posterior of ``y ~ sigmoid(a + b x)`` with the
    priors ``a ~ N(0, PRIOR_SD_INTERCEPT)``, ``b ~ N(1, PRIOR_SD_SLOPE)``."""
    theta = np.array([0.0, 1.0])
    prior_mean = np.array([0.0, 1.0])
    precision = np.diag([PRIOR_SD_INTERCEPT**-2, PRIOR_SD_SLOPE**-2])
    design = np.column_stack([np.ones_like(x), x])
    for _ in range(_ITERATIONS):
        p = _sigmoid(design @ theta)
        gradient = design.T @ (p - y) + precision @ (theta - prior_mean)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + precision
        step = np.linalg.solve(hessian, gradient)
        step *= min(1.0, MAX_STEP / max(float(np.abs(step).max()), 1e-12))
        theta = theta - step
        if np.abs(step).max() < 1e-9:
            break
    return float(theta[0]), float(max(theta[1], MIN_SLOPE))


def estimate_precision_recall(
    calibration: Calibration, histogram: Iterable[tuple[float, int]]
) -> tuple[float | None, float | None]:
    """The precision and recall a job is expected to reach under ``calibration``, from its
    items' best scores as ``(score, count)`` pairs: an accepted item is right with its
    chance, an item left unmatched misses a counterpart with its chance. ``None`` where
    nothing is accepted (precision) or nothing is expected to match (recall).

    >>> estimate_precision_recall(Calibration(), [(0.9, 10), (0.1, 10)])
    (0.9, 0.9)
    """
    pairs = [(s, n) for s, n in histogram if n > 0]
    if not pairs:
        return None, None
    scores = np.array([s for s, _ in pairs], dtype=float)
    counts = np.array([n for _, n in pairs], dtype=float)
    chance = calibration.chances(scores)
    accepted = scores >= calibration.threshold
    right = float((chance * counts)[accepted].sum())
    taken = float(counts[accepted].sum())
    expected = float((chance * counts).sum())
    precision = round(right / taken, 4) if taken else None
    recall = round(right / expected, 4) if expected > 0 else None
    return precision, recall


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return expit(z)


def labels_from_rows(rows: Iterable[tuple[float | None, bool | None]]) -> tuple[list, list]:
    """The ``(scores, right)`` of the decisions that label their proposed pair."""
    kept = [(float(s), bool(r)) for s, r in rows if s is not None and r is not None]
    return [s for s, _ in kept], [r for _, r in kept]


__all__ = [
    "MIN_LABELS",
    "Calibration",
    "estimate_precision_recall",
    "fit_acceptance",
    "fit_calibration",
    "labels_from_rows",
]

"""What a human reviewer should look at first: the pairs whose decision is most likely wrong.

Scores are calibrated probabilities that the pair is right (:mod:`matching.acceptance`),
so a job's decision about an item is wrong with a chance that follows from its scores
alone: an accepted match of score ``p`` is wrong with chance ``1 - p``; an item left
unmatched misses its counterpart with the chance that one of its candidates is right,
the sum of their scores (at most one of them can be). Reviewing the items in decreasing
order of that chance fixes, in expectation, the most wrong decisions per decision asked
(``benchmarks/review_learning.py`` measures it against the distance to the threshold).

A match is also judged beside the job's other matches: when another item of the job is
matched to the same record, at most one of them is usually right (a catalog lists each
article once), so each is more likely wrong than its own score says
(:func:`contested_error_chance`). The queue orders by that chance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from matching.claims import contested_chance
from matching.results import MatchResult

REVIEW_MIN_ERROR = 0.02
"""Chance of being wrong (0..1) below which a decision is not worth a reviewer's time."""

REVIEW_CANDIDATES = 5
"""Candidates kept per reviewable item (the proposed record among them)."""

REVIEW_SHARE = 0.1
"""Share of a batch's items (a chunk's) kept for review at most: its most uncertain."""

REVIEW_MIN_KEPT = 50
"""Reviewable decisions a batch keeps whatever its size (a small job keeps them all)."""

SHARED_RECORD_ALLOWANCE = 0.1
"""How likely two items matched to one record are both right, against the chance that
they would be if neither knew of the other (the items list holding the same article
twice). On the visible sets 2 to 7 % of the right matches share their record and 40 to
95 % of the wrong ones do (``benchmarks/review_learning.py``); 0, 0.05, 0.1 and 0.3
correct about as many wrong decisions in the first 50, 0.3 a few fewer."""


@dataclass(frozen=True, slots=True)
class ReviewPair:
    """A decision of the matcher worth reviewing: ``proposed`` is the item's match
    (``matched``) or, for an unmatched item, its best candidate; ``candidates`` are the
    item's best ``(catalog_id, score)``, best first, the proposed record among them;
    ``withdrawn_chance``, for a match withdrawn beside its rivals, the chance it was left
    of being right (what a decision about it labels, as the service stores it)."""

    proposed: MatchResult
    matched: bool
    candidates: tuple[tuple[str, float], ...]
    error_chance: float
    withdrawn_chance: float | None = None

    @property
    def item_id(self) -> str:
        return self.proposed.item_id


def error_chance(score: float, *, matched: bool, candidate_scores: Sequence[float] = ()) -> float:
    """The chance (0..1) that the matcher's decision about an item is wrong.

    ``score`` is the proposed pair's (the match, or the best candidate of an unmatched
    item); ``candidate_scores`` all of the item's candidates' (the proposed one
    included), which an unmatched item may have its counterpart among.

    >>> error_chance(0.3, matched=True)
    0.7
    >>> error_chance(0.2, matched=False, candidate_scores=[0.2, 0.15])
    0.35
    >>> error_chance(0.9, matched=False, candidate_scores=[0.9, 0.4])
    1.0
    """
    missed = sum(candidate_scores) if candidate_scores else score
    chance = 1.0 - score if matched else missed
    return round(min(1.0, max(0.0, chance)), 9)


def contested_error_chance(
    score: float, rival_scores: Sequence[float], *, allowance: float = SHARED_RECORD_ALLOWANCE
) -> float:
    """The chance (0..1) that an accepted match of ``score`` is wrong when other items of
    the job are matched to the same record with ``rival_scores``.

    Were a record the counterpart of one item at most, the match would be right only if
    every rival is wrong: its odds are multiplied by ``prod(1 - rival)``; ``allowance``
    keeps a share of the case where both are right (see
    :data:`SHARED_RECORD_ALLOWANCE`). Without rivals, or with more than
    :data:`MAX_CONTESTED_CLAIMS` claims on the record, it is ``1 - score``; a rival never
    lowers it below that. ``service/sql/queries.sql`` (``contested_claims``) computes the same.

    >>> contested_error_chance(0.9, [])
    0.1
    >>> round(contested_error_chance(0.9, [0.95]), 3)  # the weaker of two claims
    0.434
    >>> round(contested_error_chance(0.95, [0.9]), 3)  # the stronger
    0.217
    """
    if len(rival_scores) >= MAX_CONTESTED_CLAIMS:
        return error_chance(score, matched=True)
    right = contested_chance(score, rival_scores, allowance)
    return round(min(1.0, max(0.0, 1.0 - right)), 9)


MAX_CONTESTED_CLAIMS = 5
"""Most items matched to one record for their matches to be judged beside each other: a
record more items claim is more likely an article the items list repeats (on a synthetic
job whose items repeat titles, records claimed by 2 to 5 items were right for 92 to 97 %
of their items), and re-judging every claimant of a record at each new claim made a 100k
job's chunk commits several times slower (``benchmarks/review_queue_speed.py``)."""


def most_uncertain(pairs: Sequence[ReviewPair], batch_size: int) -> list[ReviewPair]:
    """The reviewable decisions of a batch of ``batch_size`` items worth keeping: the
    :data:`REVIEW_SHARE` most likely wrong (at least :data:`REVIEW_MIN_KEPT`), in the
    queue's order. A reviewer of a large job never reaches its millionth pair, and each
    kept pair costs the chunk's commit a row: on a synthetic catalog 60 % of the items
    had an error chance of 0.02 or more, which made the commit twice as slow.

    >>> from matching.results import MatchResult
    >>> pairs = [ReviewPair(MatchResult(str(n), "c", 0.5, "fuzzy", ""), True, (), n / 100)
    ...          for n in range(60)]
    >>> kept = most_uncertain(pairs, batch_size=100)
    >>> len(kept), kept[0].error_chance, kept[-1].error_chance
    (50, 0.59, 0.1)
    """
    limit = review_limit(batch_size)
    if len(pairs) <= limit:
        return list(pairs)
    return sorted(pairs, key=lambda p: (p.error_chance, p.item_id), reverse=True)[:limit]


def review_limit(batch_size: int) -> int:
    """How many reviewable decisions :func:`most_uncertain` keeps of a batch this size.
    A batch matched in parts keeps the same ones when each part keeps its own most
    uncertain ``review_limit(batch_size)`` and the batch then keeps the most uncertain of
    those.

    >>> review_limit(2000), review_limit(10)
    (200, 50)
    """
    return max(REVIEW_MIN_KEPT, math.ceil(REVIEW_SHARE * batch_size))

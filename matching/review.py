"""What a human reviewer should look at first: the pairs whose decision is most likely wrong.

Scores are calibrated probabilities that the pair is right (:mod:`matching.acceptance`),
so a job's decision about an item is wrong with a chance that follows from its scores
alone: an accepted match of score ``p`` is wrong with chance ``1 - p``; an item left
unmatched misses its counterpart with the chance that one of its candidates is right,
the sum of their scores (at most one of them can be). Reviewing the items in decreasing
order of that chance fixes, in expectation, the most wrong decisions per decision asked
(``benchmarks/review_learning.py`` measures it against the distance to the threshold).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from matching.results import MatchResult

REVIEW_MIN_ERROR = 0.02
"""Chance of being wrong (0..1) below which a decision is not worth a reviewer's time."""

REVIEW_CANDIDATES = 5
"""Candidates kept per reviewable item (the proposed record among them)."""

REVIEW_SHARE = 0.1
"""Share of a batch's items (a chunk's) kept for review at most: its most uncertain."""

REVIEW_MIN_KEPT = 50
"""Reviewable decisions a batch keeps whatever its size (a small job keeps them all)."""


@dataclass(frozen=True, slots=True)
class ReviewPair:
    """A decision of the matcher worth reviewing: ``proposed`` is the item's match
    (``matched``) or, for an unmatched item, its best candidate; ``candidates`` are the
    item's best ``(catalog_id, score)``, best first, the proposed record among them."""

    proposed: MatchResult
    matched: bool
    candidates: tuple[tuple[str, float], ...]
    error_chance: float

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

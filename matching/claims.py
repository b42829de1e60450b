"""Matches that claim the same catalog record: at most one of them is usually right.

A catalog lists each article once, so when several items of a job are matched to one
record, each is less likely right than its own score says: were the record the
counterpart of one item at most, a match would be right only if every rival is wrong,
and its odds are multiplied by ``prod(1 - rival score)``. An items list may hold the same
article twice, so a share of the "both right" case is kept: the *allowance*, the share of
the job's matches that share their record with another (a job whose items repeat
articles shares many records, and rightly), never below :data:`SHARED_CLAIMS_FLOOR`.

:func:`withdraw_contested` applies this to acceptance: a match whose chance of being
right, judged beside its rivals, falls below the job's threshold is withdrawn. It needs
the whole job's matches (every rival of every record), so it runs once a job's matches
are all known: :meth:`matching.CatalogIndex.match` does it over its items when they are
the whole job, and the service does it in SQL when a job's matching stage ends
(``contest_matches`` in ``service/sql/queries.sql``, the same rule). Withdrawn matches
still count as rivals, so the outcome does not depend on the order in which a job's
chunks were matched; a rival never makes a match more likely right, so a withdrawn match
would stay withdrawn whatever other matches were added.

Measured over the 38 benchmark jobs (visible sets, their open-world, sibling and
fragment variants, other field layouts, restaurants, people, a synthetic 20k job whose
items repeat titles; ``benchmarks/open_world.py``): mean F1 0.884 -> 0.892, no job lower,
the synthetic job's wrong matches 971 -> 815 at the same F1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from matching.results import MatchResult

SHARED_CLAIMS_FLOOR = 0.1
"""Least allowance (0..1): how likely two items matched to one record are both right,
against the chance that they would be if neither knew of the other. A fixed 0.1 did as
well on the benchmark sets whose items rarely repeat, but cost a synthetic job whose
items repeat titles 0.02 of F1 (0.962 -> 0.940); the job's own share of shared records
keeps it (0.963)."""

_TINY = 1e-6


def contested_chance(score: float, rival_scores: Sequence[float], allowance: float) -> float:
    """The chance (0..1) that a match of ``score`` is right when other matches of its job
    claim the same record with ``rival_scores``; ``allowance`` (0..1) as in the module's
    docstring. Never above ``score``; ``score`` itself without rivals or at 1.

    >>> contested_chance(0.9, [], 0.1)
    0.9
    >>> round(contested_chance(0.9, [0.95], 0.1), 3)  # the weaker of two claims
    0.566
    >>> round(contested_chance(0.5, [0.5, 0.5, 0.5], 0.1), 3)
    0.175
    """
    if not rival_scores or score >= 1.0:
        return score
    return _chance(score, math.fsum(_log_free(r) for r in rival_scores), allowance)


def _log_free(score: float) -> float:
    """The log of the chance that a claim of ``score`` is wrong (never below ``ln 1e-6``)."""
    return math.log(max(1.0 - score, _TINY))


def _chance(score: float, log_free: float, allowance: float) -> float:
    """:func:`contested_chance` given the rivals' summed :func:`_log_free`."""
    free = math.exp(log_free)
    share = max(free + allowance * (1.0 - free), _TINY)
    return min(score, score * share / (score * share + 1.0 - score))


def claims_allowance(results: Sequence[MatchResult]) -> float:
    """The allowance of a job whose matches are ``results``: the share of them that share
    their record with another, at least :data:`SHARED_CLAIMS_FLOOR` (1 at most).

    >>> r = [MatchResult("a", "x", 0.5, "fuzzy", ""), MatchResult("b", "x", 0.4, "fuzzy", "")]
    >>> claims_allowance(r + [MatchResult(str(n), str(n), 0.9, "fuzzy", "") for n in range(8)])
    0.2
    """
    claims: dict[str, int] = defaultdict(int)
    for r in results:
        claims[r.catalog_id] += 1
    shared = sum(n for n in claims.values() if n > 1)
    share = shared / len(results) if results else 0.0
    return min(1.0, max(SHARED_CLAIMS_FLOOR, share))


def withdraw_contested(
    results: Sequence[MatchResult], threshold: float
) -> tuple[list[MatchResult], dict[str, float]]:
    """``results`` (a whole job's matches, an item at most once) without the matches whose
    :func:`contested_chance` beside the others of their record is below ``threshold``,
    and the withdrawn ones' chances by item id. Kept matches keep their order and score.

    >>> two = [MatchResult("a", "x", 0.3, "fuzzy", ""), MatchResult("b", "x", 0.95, "fuzzy", "")]
    >>> others = [MatchResult(str(n), str(n), 0.9, "fuzzy", "") for n in range(8)]
    >>> kept, withdrawn = withdraw_contested(two + others, 0.26)
    >>> [r.item_id for r in kept][:2], {k: round(v, 3) for k, v in withdrawn.items()}
    (['b', '0'], {'a': 0.093})

    A job whose every match shares its record (its items repeat articles) keeps them:

    >>> withdraw_contested(two, 0.26)[1]
    {}
    """
    # per record: its claims, and the sum of their logs (a claim's rivals' is that less its
    # own, as contest_matches in service/sql/queries.sql computes it)
    claims: dict[str, int] = defaultdict(int)
    log_free: dict[str, float] = defaultdict(float)
    for r in results:
        claims[r.catalog_id] += 1
        log_free[r.catalog_id] += _log_free(r.score)
    if all(n == 1 for n in claims.values()):
        return list(results), {}
    allowance = claims_allowance(results)
    kept: list[MatchResult] = []
    withdrawn: dict[str, float] = {}
    for r in results:
        if claims[r.catalog_id] > 1 and r.score < 1.0:
            rivals = log_free[r.catalog_id] - _log_free(r.score)
            chance = _chance(r.score, rivals, allowance)
            if chance < threshold:
                withdrawn[r.item_id] = chance
                continue
        kept.append(r)
    return kept, withdrawn

"""A chunk's matches as the rows its commit stores, made wherever the chunk is matched.

The enhanced stage's work for a chunk is :func:`match_rows`: the library's matches and
reviewable decisions, with the matches already turned into rows (their explanations' JSON
written here, not on the event loop). It runs in the server's matching thread or in a
helper process (:mod:`service.match_processes`), which returns the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from math import isfinite

from matching import CatalogIndex
from matching.peers import PeerSet
from matching.results import MatchResult
from matching.review import REVIEW_MIN_ERROR, ReviewPair, most_uncertain, review_limit

MatchRow = tuple[str, str, float, str, str, str | None]  # ..., reason, explanation JSON
# item, proposed record, score, matched, error chance, method, reason, explanation JSON (an
# unmatched item's; a match keeps its own in matches), candidates JSON ([[id, score], ...])
ReviewRow = tuple[str, str, float, bool, float, str, str, str | None, str]

_float_json = float.__repr__  # what json.dumps writes for a finite float
_string_json = json.encoder.encode_basestring_ascii


# a reviewable decision's rank among its chunk's (error chance, item id) and its row
ReviewEntry = tuple[float, str, ReviewRow]


def match_rows(
    index: CatalogIndex,
    items: Sequence[tuple[str, str]],
    threshold: float,
    peers: PeerSet | None,
    chunk_size: int,
) -> tuple[list[MatchRow], list[ReviewEntry]]:
    """The matches of ``items`` as rows, and the decisions worth a reviewer's look that a
    chunk of ``chunk_size`` items could keep (:func:`kept_review` picks those it keeps).
    An item's rows do not depend on the other items of the call, so a chunk may be
    matched in parts, ``items`` being one of them; matches are judged beside the others of
    their record when the job's stage ends (``contest_matches``), not here."""
    results, review = index.match_for_review(
        items, threshold=threshold, peers=peers, review_from=REVIEW_MIN_ERROR, contest=False
    )
    rows = [
        (r.item_id, r.catalog_id, float(r.score), r.method, r.reason, explanation_json(r))
        for r in results
    ]
    kept = most_uncertain(review, chunk_size)
    return rows, [(p.error_chance, p.item_id, review_row(p)) for p in kept]


def kept_review(entries: Sequence[ReviewEntry], chunk_size: int) -> list[ReviewRow]:
    """The rows of the reviewable decisions a chunk of ``chunk_size`` items keeps, given
    those :func:`match_rows` gave for its parts: the same as
    :func:`matching.review.most_uncertain` of the whole chunk's."""
    limit = review_limit(chunk_size)
    if len(entries) > limit:
        entries = sorted(entries, key=lambda e: (e[0], e[1]), reverse=True)[:limit]
    return [row for _, _, row in entries]


def explanation_json(result: MatchResult) -> str:
    """A match's explanation as the JSON stored with it: what ``json.dumps`` of its
    evidence dicts gives (compact), written directly for finite floats, twice as fast (a
    chunk writes thousands; PostgreSQL parses them into jsonb)."""
    parts = []
    for e in result.explanation:
        value, contribution = e.value, e.contribution
        if (
            type(value) is float
            and type(contribution) is float
            and isfinite(value)
            and isfinite(contribution)
        ):
            parts.append(
                f'{{"signal":{_string_json(e.signal)},"value":{_float_json(value)},'
                f'"contribution":{_float_json(contribution)}}}'
            )
        else:
            parts.append(json.dumps(e.as_dict(), separators=(",", ":")))
    return "[" + ",".join(parts) + "]"


def review_row(pair: ReviewPair) -> ReviewRow:
    """A reviewable decision as the commit stores it (``review_queue``)."""
    p = pair.proposed
    candidates = ",".join(
        f"[{_string_json(c)},{_float_json(float(s))}]" for c, s in pair.candidates
    )
    return (
        p.item_id,
        p.catalog_id,
        float(p.score),
        pair.matched,
        float(pair.error_chance),
        p.method,
        "" if pair.matched else p.reason,
        None if pair.matched else explanation_json(p),
        f"[{candidates}]",
    )

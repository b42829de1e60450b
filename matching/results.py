"""The value objects returned by the matcher."""

from __future__ import annotations

from dataclasses import dataclass

METHOD_EXACT = "exact"
METHOD_CODE = "code"
METHOD_FUZZY = "fuzzy"


@dataclass(frozen=True, slots=True)
class MatchResult:
    """One item paired with its best catalog record.

    ``score`` is on a 0..1 scale; ``method`` names the stage that decided the
    pair (``"exact"``, ``"code"`` or ``"fuzzy"``) and ``reason`` explains it in
    one short sentence.

    >>> MatchResult("a1", "c9", 1.0, "exact", "normalised text identical").method
    'exact'
    """

    item_id: str
    catalog_id: str
    score: float
    method: str
    reason: str

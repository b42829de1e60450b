"""The value objects returned by the matcher."""

from __future__ import annotations

from dataclasses import dataclass

METHOD_EXACT = "exact"
METHOD_CODE = "code"
METHOD_FUZZY = "fuzzy"


@dataclass(frozen=True, slots=True)
class Evidence:
    """How much one signal moved a pair's score: ``contribution`` is in log-odds
    (the score is the logistic of the contributions' sum), ``value`` is the signal's
    own value for the pair.

    >>> Evidence("unique_code", 1.0, 2.28).as_dict()
    {'signal': 'unique_code', 'value': 1.0, 'contribution': 2.28}
    """

    signal: str
    value: float
    contribution: float

    def as_dict(self) -> dict[str, str | float]:
        return {"signal": self.signal, "value": self.value, "contribution": self.contribution}


@dataclass(frozen=True, slots=True)
class MatchResult:
    """One item paired with its best catalog record.

    ``score`` is on a 0..1 scale; ``method`` names the stage that decided the
    pair (``"exact"``, ``"code"`` or ``"fuzzy"``) and ``reason`` explains it in
    one short sentence; ``explanation`` lists what moved the score, largest first.

    >>> MatchResult("a1", "c9", 1.0, "exact", "normalised text identical").method
    'exact'
    """

    item_id: str
    catalog_id: str
    score: float
    method: str
    reason: str
    explanation: tuple[Evidence, ...] = ()

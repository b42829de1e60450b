"""A match's stored explanation is exactly what json.dumps makes of its evidence."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from matching.results import Evidence, MatchResult
from service.stage_runners import explanation_json

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5))
evidence = st.builds(Evidence, st.text(), numbers, numbers)


@given(st.lists(evidence, max_size=12))
def test_explanation_json_is_json_dumps_of_the_evidence(explanation: list[Evidence]) -> None:
    result = MatchResult("i", "c", 0.5, "fuzzy", "why", explanation=tuple(explanation))
    expected = json.dumps([e.as_dict() for e in explanation], separators=(",", ":"))
    assert explanation_json(result) == expected

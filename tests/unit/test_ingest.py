"""JSON upload parsing: pure, no database."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.exceptions import ValidationError
from service.ingest import parse_json_records


def test_integer_ids_become_strings_and_must_be_unique() -> None:
    assert parse_json_records({"records": [{"id": 7}]}).records[0][0] == "7"
    with pytest.raises(ValidationError, match="duplicate id '7'"):
        parse_json_records({"records": [{"id": 7}, {"id": "7"}]})


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.text(
                    alphabet=st.characters(
                        blacklist_categories=("Cs",), blacklist_characters="\x00"
                    )
                )
            }
        ),
        min_size=1,
        max_size=20,
    )
)
def test_json_records_round_trip(records: list[dict]) -> None:
    rows = [{"id": f"r{n}", **r} for n, r in enumerate(records)]
    parsed = parse_json_records({"records": rows})
    assert [json.loads(text) for _, text in parsed.records] == rows
    assert [rid for rid, _ in parsed.records] == [r["id"] for r in rows]

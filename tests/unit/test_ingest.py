"""Upload parsing: pure, no database."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.exceptions import ValidationError
from service.ingest import parse_csv, parse_json_records


def test_csv_keeps_every_column_and_strips_a_bom() -> None:
    parsed = parse_csv("\ufeffsku,name,price\nA1,Thing,3\n".encode(), id_field="sku")
    assert parsed.columns == ["sku", "name", "price"]
    ((record_id, text),) = parsed.records
    assert (record_id, json.loads(text)) == ("A1", {"sku": "A1", "name": "Thing", "price": "3"})


def test_csv_quoted_fields_with_newlines_and_commas() -> None:
    parsed = parse_csv(b'id,name\n1,"a, b\nc"\n2,d\n')
    assert [json.loads(r)["name"] for _, r in parsed.records] == ["a, b\nc", "d"]


def test_csv_decoding_error_names_line_and_column() -> None:
    with pytest.raises(ValidationError) as info:
        parse_csv(b"id,name\n1,ok\n2,caf\xe9\n")
    assert info.value.details == {"line": 3, "column": 6, "encoding": "utf-8"}


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


@given(st.lists(st.text(alphabet='abc ,"\n', max_size=8), min_size=1, max_size=10))
def test_csv_either_parses_or_says_why(values: list[str]) -> None:
    data = "id,name\n" + "".join(f"{n},{v}\n" for n, v in enumerate(values))
    try:
        parsed = parse_csv(data.encode())
    except ValidationError as exc:
        assert exc.message  # a rejected CSV always says why
    else:
        assert all(rid.strip() for rid, _ in parsed.records)

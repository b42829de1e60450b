"""CSV and .xlsx upload parsing: pure, no database (duplicate ids are the database's check)."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.exceptions import ValidationError
from service.tables import MAX_COLUMNS, read_csv


def parse(data: bytes, *, id_field: str = "id", encoding: str | None = "utf-8"):
    table = read_csv(io.BytesIO(data), id_field=id_field, encoding=encoding)
    rows = [row for batch in table.batches for row in batch]
    return table, rows


def test_csv_keeps_every_column_and_strips_a_bom() -> None:
    table, rows = parse("\ufeffsku,name,price\nA1,Thing,3\n".encode(), id_field="sku")
    assert table.columns == ["sku", "name", "price"]
    ((line, record_id, text),) = rows
    assert (line, record_id) == (2, "A1")
    assert json.loads(text) == {"sku": "A1", "name": "Thing", "price": "3"}


def test_csv_quoted_fields_with_newlines_and_commas() -> None:
    _, rows = parse(b'id,name\n1,"a, b\nc"\n2,d\n')
    assert [json.loads(r)["name"] for _, _, r in rows] == ["a, b\nc", "d"]
    assert [line for line, _, _ in rows] == [3, 4]  # the line a record ends on


def test_csv_decoding_error_names_line_and_column() -> None:
    with pytest.raises(ValidationError) as info:
        parse(b"id,name\n1,ok\n2,caf\xe9\n")
    assert info.value.details == {"line": 3, "column": 6, "encoding": "utf-8"}
    assert "Encoding menu" in info.value.message and "--encoding" in info.value.message


def test_csv_decoding_error_deep_in_a_big_body_names_its_line() -> None:
    body = b"id,name\n" + b"".join(b"%d,name %d\n" % (i, i) for i in range(200_000))
    with pytest.raises(ValidationError) as info:
        parse(body + b"x,caf\xe9\n")
    assert info.value.details["line"] == 200_002


def test_a_huge_header_is_refused_by_its_count_before_anything_else() -> None:
    header = ",".join(f"c{n}" for n in range(50_000)) + ",c1"  # a duplicate, too
    with pytest.raises(ValidationError, match=f"50,001 columns; at most {MAX_COLUMNS:,}"):
        parse(header.encode() + b"\n")


def test_duplicate_column_names_are_found() -> None:
    header = ",".join(f"c{n}" for n in range(MAX_COLUMNS - 2)) + ",c7"
    with pytest.raises(ValidationError, match=r"duplicate column name\(s\) \['c7'\]"):
        parse(b"id," + header.encode() + b"\n")


def test_nul_and_empty_ids_name_the_line() -> None:
    with pytest.raises(ValidationError, match="line 3, column 2 .* NUL"):
        parse(b"id,name\n1,a\n2,b\x00c\n")
    with pytest.raises(ValidationError, match="line 2: id field 'id' is empty"):
        parse(b"id,name\n ,a\n")


def test_lone_surrogates_are_refused_with_their_place() -> None:
    from service.tables import _batches

    # no file encoding accepted here decodes to one, but a workbook cell might hold one
    rows = iter([(2, ["1", "fine"]), (3, ["2", "a\ud800b"])])
    with pytest.raises(ValidationError, match="row 3, column 2 .* surrogate"):
        list(_batches(["id", "name"], rows, "id", "row", "sheet"))


def test_batches_are_bounded() -> None:
    from service.tables import BATCH_ROWS

    body = b"id\n" + b"".join(b"%d\n" % i for i in range(BATCH_ROWS * 2 + 1))
    table = read_csv(io.BytesIO(body), id_field="id", encoding="utf-8")
    assert [len(b) for b in table.batches] == [BATCH_ROWS, BATCH_ROWS, 1]


@given(st.lists(st.text(alphabet='abc ,"\n', max_size=8), min_size=1, max_size=10))
def test_csv_either_parses_or_says_why(values: list[str]) -> None:
    data = "id,name\n" + "".join(f"{n},{v}\n" for n, v in enumerate(values))
    try:
        _, rows = parse(data.encode())
    except ValidationError as exc:
        assert exc.message  # a rejected CSV always says why
    else:
        assert all(rid.strip() for _, rid, _ in rows)


@pytest.mark.parametrize(
    ("text", "encoding", "detected"),
    [
        ("id,name\n1,Größe Übergröße Straße\n2,Müller GmbH®\n", "cp1252", "cp1252"),
        ('id,name\n1,Sony Bravia 40" LCD TV™ – black\n2,Bose® QC 35 … €299\n', "cp1252", "cp1252"),
        ("id,name\n1,Crème brûlée « spécial »\n", "latin-1", "cp1252"),
        ("id,name\n1,Zażółć jaźń młody\n2,Łódź miasto ósmy\n", "cp1250", "cp1250"),
        ("id,name\n1,Съешь же ещё этих мягких французских булок\n", "cp1251", "cp1251"),
        ("id,name\n1,Crème brûlée\n", "utf-8", "utf-8"),
        ("id,name\n1,Crème brûlée\n", "utf-16", "utf-16"),
    ],
)
def test_encoding_detection(text: str, encoding: str, detected: str) -> None:
    table, rows = parse(text.encode(encoding), encoding=None)
    assert table.encoding == detected
    assert json.loads(rows[0][2])["name"] == text.splitlines()[1].split(",", 1)[1]


def test_binary_files_are_not_tables() -> None:
    with pytest.raises(ValidationError, match="not a CSV or Excel file"):
        parse(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01", encoding=None)


def test_a_workbook_that_unpacks_too_big_is_refused_unread() -> None:
    import openpyxl

    from service.tables import read_xlsx

    book = openpyxl.Workbook()
    book.active.append(["id", "name"])
    for n in range(2000):
        book.active.append([n, "the same text again " * 5])
    out = io.BytesIO()
    book.save(out)
    table = read_xlsx(io.BytesIO(out.getvalue()), id_field="id")
    assert sum(len(b) for b in table.batches) == 2000
    with pytest.raises(ValidationError, match="unpacks to .* bytes; at most 100,000"):
        read_xlsx(io.BytesIO(out.getvalue()), id_field="id", max_unpacked_bytes=100_000)

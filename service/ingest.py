"""Turn an upload (JSON records or CSV bytes) into validated ``(id, json)`` records.

Pure functions: nothing is written unless the whole upload is valid, and every error says
where (record index, or CSV line and column) and what is wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.exceptions import ValidationError, shown

MAX_ID_LENGTH = 1000
MAX_COLUMNS = 1000
MAX_FIELD_CHARS = csv.field_size_limit()  # one limit for CSV and JSON fields (131,072)
MAX_SHOWN_COLUMNS = 50  # of a header, in an error's details
# text codecs that are no file's encoding (and fail, or misread, on a file's bytes)
NOT_FILE_ENCODINGS = {"punycode", "idna", "undefined", "unicode-escape", "raw-unicode-escape"}


@dataclass(frozen=True)
class ParsedUpload:
    """Records as ``(record_id, json_text)`` and the union of their columns."""

    records: list[tuple[str, str]]
    columns: list[str]


def text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode text"
    return None


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise ValidationError(f"{where} {problem}")
        if len(value) > MAX_FIELD_CHARS:
            raise ValidationError(
                f"{where} is {len(value):,} characters long; a field may have at most "
                f"{MAX_FIELD_CHARS:,}"
            )
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            _check_value(key, f"{where}: key {shown(key)}")
            _check_value(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            _check_value(inner, f"{where}[{n}]")


def _record_id(value: Any, where: str, id_field: str) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, str | int):
        raise ValidationError(
            f"{where}: id field {shown(id_field)} must be a string or an integer, got "
            f"{'null' if value is None else type(value).__name__}"
        )
    text = str(value).strip()
    if not text:
        raise ValidationError(f"{where}: id field {shown(id_field)} is empty")
    if len(text) > MAX_ID_LENGTH:
        raise ValidationError(f"{where}: id is longer than {MAX_ID_LENGTH} characters")
    return text


def _check_id_field(id_field: Any) -> str:
    if not isinstance(id_field, str) or not id_field.strip():
        raise ValidationError("idField must be a non-empty string")
    problem = text_problem(id_field)
    if problem:
        raise ValidationError(f"idField {problem}")
    return id_field


def parse_json_records(body: Any) -> ParsedUpload:
    """Validate ``{"records": [...], "idField": "id"}``."""
    if not isinstance(body, dict):
        raise ValidationError('the body must be a JSON object: {"records": [...], "idField": "id"}')
    extra = sorted(set(body) - {"records", "idField"})
    if extra:
        raise ValidationError(f"unknown field(s) {shown(extra)}; expected 'records' and 'idField'")
    if "records" not in body:
        raise ValidationError("missing field 'records' (a list of objects)")
    records = body["records"]
    id_field = _check_id_field(body.get("idField", "id"))
    if not isinstance(records, list):
        raise ValidationError("'records' must be a list of objects")
    if not records:
        raise ValidationError("'records' is empty: nothing to upload")
    return _collect(records, id_field, where=lambda n: f"records[{n}]")


def _collect(records: Iterable[Any], id_field: str, *, where: Any) -> ParsedUpload:
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    columns: dict[str, None] = {}
    for n, record in enumerate(records):
        place = where(n)
        if not isinstance(record, dict):
            raise ValidationError(f"{place} must be an object, got {type(record).__name__}")
        if id_field not in record:
            raise ValidationError(f"{place} has no id field {shown(id_field)}")
        _check_value(record, place)
        record_id = _record_id(record[id_field], place, id_field)
        if record_id in seen:
            raise ValidationError(
                f"duplicate id {shown(record_id)}: {place} repeats {where(seen[record_id])}"
            )
        seen[record_id] = n
        for key in record:
            columns.setdefault(key, None)
        if len(columns) > MAX_COLUMNS:
            raise ValidationError(f"more than {MAX_COLUMNS} distinct columns")
        out.append((record_id, json.dumps(record, ensure_ascii=False, separators=(",", ":"))))
    return ParsedUpload(records=out, columns=list(columns))


def check_encoding(encoding: str) -> str:
    """The canonical name of a text encoding a file may be in; else a 422."""
    try:
        info = codecs.lookup(encoding)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        info = None
    if info is None or not info._is_text_encoding or info.name in NOT_FILE_ENCODINGS:
        raise ValidationError(
            f"unknown encoding {shown(encoding)}; use a text encoding such as utf-8, "
            "latin-1 or cp1252"
        )
    return info.name


def decode_csv(raw: bytes, encoding: str) -> str:
    name = check_encoding(encoding)
    if name == "utf-8":
        name = "utf-8-sig"  # tolerate a byte-order mark
    try:
        return raw.decode(name)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValidationError(
            f"the CSV is not valid {encoding}: byte 0x{raw[exc.start]:02x} at line {line}, "
            f"column {column} cannot be decoded; pass ?encoding=latin-1 or ?encoding=cp1252 "
            "if the file comes from Excel or Windows",
            details={"line": line, "column": column, "encoding": encoding},
        ) from None
    except UnicodeError as exc:  # a codec that fails on its own terms
        raise ValidationError(f"the CSV cannot be read as {encoding}: {shown(str(exc))}") from None


def parse_csv(raw: bytes, *, id_field: str = "id", encoding: str = "utf-8") -> ParsedUpload:
    """Validate a CSV upload: header row, an id column, no ragged rows, unique ids."""
    id_field = _check_id_field(id_field)
    text = decode_csv(raw, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise ValidationError("the CSV is empty: expected a header row and records")
        header = [h.strip() for h in header]
        for col, name in enumerate(header, start=1):
            if not name:
                raise ValidationError(f"line 1, column {col}: empty column name in the header")
            problem = text_problem(name)
            if problem:
                raise ValidationError(f"line 1, column {col}: column name {problem}")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ValidationError(f"line 1: duplicate column name(s) {shown(dupes)} in the header")
        if id_field not in header:
            raise ValidationError(
                f"the CSV has no id column {shown(id_field)}; its columns are {shown(header)}. "
                "Pass ?idField=COLUMN to name the id column.",
                details={"columns": header[:MAX_SHOWN_COLUMNS]},
            )
        rows: list[dict[str, str]] = []
        lines: list[int] = []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise ValidationError(
                    f"line {reader.line_num}: expected {len(header)} columns like the header, "
                    f"found {len(row)}",
                    details={"line": reader.line_num},
                )
            rows.append(dict(zip(header, row, strict=True)))
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise ValidationError(
            f"line {reader.line_num}: the CSV is malformed: {exc}",
            details={"line": reader.line_num},
        ) from None
    if not rows:
        raise ValidationError("the CSV has a header but no records")
    return _collect(rows, id_field, where=lambda n: f"line {lines[n]}")

"""Turn a JSON upload into validated ``(id, json)`` records (CSV and .xlsx: ``tables``).

Pure functions: nothing is written unless the whole upload is valid, and every error says
where (record index, or CSV line and column) and what is wrong.
"""

from __future__ import annotations

import codecs
import csv
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

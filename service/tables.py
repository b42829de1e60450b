"""Read a table upload (CSV or ``.xlsx``) as batches of ``(line, record_id, json_text)`` rows.

Blocking and CPU-bound by design: the routes run it in a worker thread and copy each batch
into PostgreSQL while the next one is parsed, so the event loop stays free and memory stays
bounded by the body plus a batch or two. The header is checked before any record is read;
duplicate ids are found by the database after the copy (see ``Store.upload_table``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from service.encodings import NOT_A_TABLE, detect_encoding, undecodable_error
from service.exceptions import ValidationError, shown
from service.ingest import (
    MAX_COLUMNS,
    MAX_ID_LENGTH,
    MAX_SHOWN_COLUMNS,
    _check_id_field,
    check_encoding,
    text_problem,
)

BATCH_ROWS = 5_000  # rows per COPY: few thread hand-offs, a batch stays a few MB at most
MAX_XLSX_UNPACKED_BYTES = 1 << 30  # ZIP members' declared sizes, which zipfile enforces
_ZIP_MAGIC = b"PK\x03\x04"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Row = tuple[int, str, str]
_quote = encode_basestring  # a str as a JSON string literal (non-ASCII kept as is)


@dataclass
class TableUpload:
    """A checked header, the encoding used (CSV only) and the records, batch by batch."""

    columns: list[str]
    encoding: str | None
    batches: Iterator[list[Row]]


def looks_like_xlsx(body: memoryview) -> bool:
    return bytes(body[:4]) == _ZIP_MAGIC


def read_csv(buffer: io.BytesIO, *, id_field: str, encoding: str | None) -> TableUpload:
    """Check the header of a CSV body and return its records as batches.

    ``encoding=None`` detects it: UTF-8 when the whole body is valid UTF-8, else the best
    guess of charset-normalizer on a sample.
    """
    view = buffer.getbuffer()
    try:
        if encoding is None:
            encoding = detect_encoding(view)
            guessed = encoding not in ("utf-8", "utf-16", "utf-32")
        else:
            encoding = check_encoding(encoding)
            guessed = False
    finally:
        view.release()
    id_field = _check_id_field(id_field)  # after the body's kind: a PNG's "header" is junk
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    buffer.seek(0)
    text = io.TextIOWrapper(buffer, encoding=codec, newline="")
    reader = csv.reader(text, strict=True)

    def decode_error() -> ValidationError:
        return undecodable_error(buffer, codec, encoding, guessed=guessed)

    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _malformed(reader, exc) from None
    except UnicodeDecodeError:
        raise decode_error() from None
    except UnicodeError as exc:  # a codec that fails on its own terms
        raise _unreadable(encoding, exc) from None
    if header is None or not any(h.strip() for h in header):
        raise ValidationError("the CSV is empty: expected a header row and records")
    columns = check_header(header, id_field, where="line 1")

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise _malformed(reader, exc) from None
        except UnicodeDecodeError:
            raise decode_error() from None
        except UnicodeError as exc:
            raise _unreadable(encoding, exc) from None

    return TableUpload(columns, encoding, _batches(columns, rows(), id_field, "line", "CSV"))


def read_xlsx(
    buffer: io.BytesIO, *, id_field: str, max_unpacked_bytes: int = MAX_XLSX_UNPACKED_BYTES
) -> TableUpload:
    """The first sheet of an ``.xlsx`` workbook, its first row as the header (streamed).

    A workbook is a ZIP archive: one that would unpack to more than ``max_unpacked_bytes``
    is refused before anything is unpacked (its shared strings are held in memory)."""
    import openpyxl  # imported here: a CSV-only server never pays for it

    id_field = _check_id_field(id_field)
    try:
        with zipfile.ZipFile(buffer) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile:
        raise ValidationError(f"{NOT_A_TABLE} (a damaged ZIP file)") from None
    if unpacked > max_unpacked_bytes:
        raise ValidationError(
            f"the workbook unpacks to {unpacked:,} bytes; at most {max_unpacked_bytes:,} are "
            "read: save its first sheet as CSV and upload that"
        )
    buffer.seek(0)
    try:
        book = openpyxl.load_workbook(buffer, read_only=True, data_only=True)
        sheet = book.worksheets[0]
        cells = sheet.iter_rows(values_only=True)
        header_cells = next(cells, None)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, IndexError, TypeError):
        raise ValidationError(f"{NOT_A_TABLE} (a ZIP file that is not an .xlsx workbook)") from None
    header = _trim([_cell_text(c) for c in header_cells or ()])
    if not any(h.strip() for h in header):
        raise ValidationError("the first sheet is empty: expected a header row and records")
    columns = check_header(header, id_field, where="row 1")
    width = len(columns)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, values in enumerate(cells, start=2):
                row = [_cell_text(v) for v in values]
                if not any(row):
                    continue  # an empty row
                if len(row) > width:
                    row = row[:width] if not any(row[width:]) else row
                elif len(row) < width:
                    row += [""] * (width - len(row))
                yield number, row
        finally:
            book.close()

    return TableUpload(columns, None, _batches(columns, rows(), id_field, "row", "sheet"))


def check_header(header: list[str], id_field: str, *, where: str) -> list[str]:
    """Strip and check column names: a count limit first, then linear checks."""
    if len(header) > MAX_COLUMNS:
        raise ValidationError(
            f"{where}: the header has {len(header):,} columns; at most {MAX_COLUMNS:,} are accepted"
        )
    columns = [h.strip() for h in header]
    for col, name in enumerate(columns, start=1):
        if not name:
            raise ValidationError(f"{where}, column {col}: empty column name in the header")
        problem = text_problem(name)
        if problem:
            raise ValidationError(f"{where}, column {col}: column name {problem}")
    dupes = sorted(name for name, n in Counter(columns).items() if n > 1)
    if dupes:
        raise ValidationError(f"{where}: duplicate column name(s) {shown(dupes)} in the header")
    if id_field not in columns:
        raise ValidationError(
            f"the upload has no id column {shown(id_field)}; its columns are {shown(columns)}. "
            "Pass ?idField=COLUMN to name the id column.",
            details={"columns": columns[:MAX_SHOWN_COLUMNS]},
        )
    return columns


def _batches(
    columns: list[str],
    rows: Iterable[tuple[int, list[str]]],
    id_field: str,
    word: str,
    what: str,
) -> Iterator[list[Row]]:
    width = len(columns)
    id_at = columns.index(id_field)
    # a record's JSON object: one str.format of its quoted cells (4-5x faster than dumps)
    keys = [("{" if n == 0 else ",") + _quote(name) + ":" for n, name in enumerate(columns)]
    as_json = ("".join(k.replace("{", "{{").replace("}", "}}") + "{}" for k in keys) + "}}").format
    batch: list[Row] = []
    any_rows = False
    for line, row in rows:
        if len(row) != width:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            raise ValidationError(
                f"{word} {line}: expected {width} columns like the header, found {len(row)}",
                details={"line": line},
            )
        record_id = row[id_at].strip()
        if not record_id:
            raise ValidationError(
                f"{word} {line}: id field {shown(id_field)} is empty", details={"line": line}
            )
        if len(record_id) > MAX_ID_LENGTH:
            raise ValidationError(
                f"{word} {line}: id is longer than {MAX_ID_LENGTH} characters",
                details={"line": line},
            )
        data = as_json(*map(_quote, row))
        if "\\u0000" in data and "\x00" in "".join(row):
            _raise_text_problem(columns, row, line, word)
        batch.append((line, record_id, data))
        if len(batch) >= BATCH_ROWS:
            _check_encodable(batch, columns, word)
            yield batch
            any_rows = True
            batch = []
    if batch:
        _check_encodable(batch, columns, word)
        yield batch
    elif not any_rows:
        raise ValidationError(f"the {what} has a header but no records")


def _check_encodable(batch: list[Row], columns: list[str], word: str) -> None:
    """Lone surrogates (some codecs decode to them) cannot be stored: find the row."""
    try:
        "".join(data for _, _, data in batch).encode("utf-8")
    except UnicodeEncodeError:
        for line, _, data in batch:
            row = list(json.loads(data).values())
            if any(text_problem(v) for v in row):
                _raise_text_problem(columns, row, line, word)
        raise


def _raise_text_problem(columns: list[str], row: list[str], line: int, word: str) -> None:
    for col, (name, value) in enumerate(zip(columns, row, strict=True), start=1):
        problem = text_problem(value)
        if problem:
            raise ValidationError(
                f"{word} {line}, column {col} ({shown(name)}) {problem}",
                details={"line": line, "column": col},
            )


def _unreadable(encoding: str, exc: UnicodeError) -> ValidationError:
    return ValidationError(f"the CSV cannot be read as {encoding}: {shown(str(exc))}")


def _malformed(reader: Any, exc: csv.Error) -> ValidationError:
    return ValidationError(
        f"line {reader.line_num}: the CSV is malformed: {exc}",
        details={"line": reader.line_num},
    )


def _trim(values: list[str]) -> list[str]:
    while values and not values[-1].strip():
        values.pop()
    return values


def _cell_text(value: Any) -> str:
    """A cell as the text a CSV export of the sheet would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


async def batches_off_loop(batches: Iterator[list[Row]]) -> AsyncIterator[list[Row]]:
    """Advance a blocking batch iterator in a worker thread, one batch ahead of the consumer
    (the next batch is parsed while the current one is copied)."""
    pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
    try:
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
            yield batch
    finally:
        # the consumer stopped early (an error): let the thread finish its batch, quietly
        if not pending.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
        elif not pending.cancelled():
            pending.exception()  # retrieved, so it is not logged as never retrieved

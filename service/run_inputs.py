"""What ``chunkmatch run`` checks on this machine before it uploads anything.

Every mistake that can be seen locally (a missing or unreadable file, an unknown encoding,
a column that is not in the header, a threshold out of range, an output folder that does
not exist) is reported before the first request, so a wrong command leaves no half-filled
project behind. The server checks everything again: these checks only move its answers
earlier.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matching import compose_text
from service.stages import JOB_TYPES, MAX_CHUNK_SIZE, default_fields

# Enough bytes to hold any sensible header line.
HEADER_PROBE_BYTES = 1 << 20
# Files the CLI hands to the server without reading their columns here (the server
# reads them: spreadsheets).
UNCHECKED_SUFFIXES = (".xlsx",)
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class InputError(Exception):
    """A problem with the command line or its files, found before any upload."""


@dataclass(frozen=True)
class InputFile:
    """One of the two files of a run, read and checked."""

    kind: str  # "items" or "catalog"
    path: Path
    data: bytes
    encoding: str | None  # None: the server's default (or its detection)
    id_field: str
    fields: tuple[str, ...] | None  # None: the server's default (name, else title)
    columns: tuple[str, ...] | None  # None: not read here (a spreadsheet)

    def records(self, encoding: str | None = None) -> list[tuple[str, str]] | None:
        """``(id, text)`` of every record, in file order, as the server reads them (ids and
        column names stripped, blank lines skipped); None when the file is not read here."""
        if self.columns is None:
            return None
        text = _decode(self.data, encoding or self.encoding, strict=False)
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader, [])]
        fields = list(self.fields or default_fields(header))
        id_at = header.index(self.id_field)
        found: list[tuple[str, str]] = []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            record = dict(zip(header, row, strict=False))
            record_id = row[id_at].strip() if id_at < len(row) else ""
            found.append((record_id, compose_text(record, fields)))
        return found


def content_type(path: Path) -> str:
    """What the upload is sent as: a spreadsheet by its suffix, else CSV."""
    return XLSX_CONTENT_TYPE if path.suffix.lower() == ".xlsx" else "text/csv"


def check_encoding(name: str | None, option: str) -> str | None:
    if name is None:
        return None
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise InputError(
            f"{option} {name!r} is not an encoding Python knows (try utf-8, cp1252 or latin-1)"
        ) from None
    if not getattr(info, "_is_text_encoding", True):
        raise InputError(f"{option} {name!r} is not a text encoding")
    return name


def _decode(data: bytes, encoding: str | None, *, strict: bool) -> str:
    errors = "strict" if strict else "replace"
    if encoding is None:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # the server decides (or says what to pass); column names are usually ASCII
            return data.decode("cp1252", errors="replace")
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    text = decoder.decode(data, final=True)
    return text[1:] if text.startswith("\ufeff") else text


def _header(path: Path, data: bytes, encoding: str | None, option: str) -> tuple[str, ...]:
    probe = data[:HEADER_PROBE_BYTES]
    end = probe.find(b"\n")
    line = probe if end < 0 else probe[:end]
    try:
        text = _decode(line, encoding, strict=True)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: the header line is not {encoding} (byte {exc.start}); "
            f"pass the file's encoding with {option}"
        ) from None
    header = next(csv.reader([text]), [])
    columns = tuple(h.strip() for h in header)
    if not any(columns):
        raise InputError(f"{path}: the file is empty or its first line is not a CSV header")
    return columns


def read_input(
    kind: str,
    path_arg: str,
    *,
    side: str,
    encoding: str | None,
    encoding_option: str | None,
    id_field: str,
    fields: Sequence[str] | None,
) -> InputFile:
    """Read and check the ``--items`` or ``--catalog`` file (``side``: ``item`` or
    ``catalog``, as in the options' names; ``encoding_option``: the option that gave the
    encoding, None for ``--encoding``)."""
    encoding_option = encoding_option or "--encoding"
    id_option, fields_option = f"--{side}-id", f"--{side}-fields"
    path = Path(path_arg)
    if not path.exists():
        raise InputError(f"--{kind}: no such file: {path}")
    if not path.is_file():
        raise InputError(f"--{kind}: {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"--{kind}: cannot read {path}: {exc.strerror}") from None
    if not data.strip():
        raise InputError(f"--{kind}: {path} is empty")
    wanted = tuple(fields) if fields else None
    if path.suffix.lower() in UNCHECKED_SUFFIXES:
        return InputFile(kind, path, data, encoding, id_field, wanted, None)
    columns = _header(path, data, encoding, encoding_option)
    if id_field not in columns:
        raise InputError(
            f"{path}: no id column {id_field!r} (its columns are {list(columns)}); "
            f"name the id column with {id_option}"
        )
    if wanted is None:
        if not default_fields(columns):
            raise InputError(
                f"{path}: no 'name' or 'title' column to match on (its columns are "
                f"{list(columns)}); name the columns with {fields_option}"
            )
    else:
        missing = [f for f in wanted if f not in columns]
        if missing:
            raise InputError(
                f"{fields_option}: no column {missing} in {path} (its columns are {list(columns)})"
            )
        if len(set(wanted)) != len(wanted):
            raise InputError(f"{fields_option} names a column twice")
    return InputFile(kind, path, data, encoding, id_field, wanted, columns)


def check_job(job_type: str, threshold: float | None, chunk_size: int | None) -> None:
    if job_type not in JOB_TYPES:
        raise InputError(f"--job-type {job_type!r} is not one of {', '.join(JOB_TYPES)}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold must be between 0 and 1, got {threshold}")
    if chunk_size is not None and not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InputError(f"--chunk-size must be from 1 to {MAX_CHUNK_SIZE}, got {chunk_size}")


def check_output(out_arg: str) -> Path:
    """The output file can be written: its folder exists and is writable, and it is not a
    folder itself (checked by creating, then removing, a file beside it)."""
    out = Path(out_arg)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name, e.g. {out / 'matches.csv'}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"--out: the folder {folder} does not exist")
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError(f"--out: {out} exists and cannot be written")
    probe = folder / f".{out.name}.chunkmatch-check-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out: cannot write in {folder}: {exc.strerror}") from None
    return out

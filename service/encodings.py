"""Which text encoding a CSV body is in: UTF-8 when it is valid UTF-8, else a guess of
charset-normalizer on a sample (cp1252 whenever it reads the sample cleanly), and where a
body stops fitting an encoding, for an error message that names the line and column.
"""

from __future__ import annotations

import codecs
import io

import charset_normalizer
from charset_normalizer.md import mess_ratio

from service.exceptions import ValidationError
from service.ingest import check_encoding

DETECT_SAMPLE_BYTES = 1 << 20  # what the encoding detector reads, around the first non-UTF-8 byte
_DECODE_BLOCK_BYTES = 1 << 20
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (and .doc)
# Among encodings that read a file equally well, the one most files from Excel and Windows
# in Western Europe and the Americas are written in.
_PREFERRED_GUESS = "cp1252"
# charset-normalizer's "mess" ratio (0: clean text) of a sample read as cp1252, below which
# cp1252 is taken. On short Western samples its own pick is often a rarer code page that
# reads the same letters (mac_iceland for German, cp850 for "Bose® … €299"); text of other
# scripts read as cp1252 scores far above (Polish 1.1, Greek 0.8, Cyrillic 1.7).
_CLEAN_MESS = 0.3
NOT_A_TABLE = "this is not a CSV or Excel file"
ENCODING_CHOICE = (
    "choose the file's encoding: the Encoding menu on the page, --encoding with "
    "chunkmatch run, ?encoding= in the API (cp1252 for most files saved by Excel on Windows)"
)


def first_undecodable(view: memoryview, codec: str) -> tuple[int, str] | None:
    """Offset and reason of the first byte ``codec`` cannot decode (``None``: all fine)."""
    decoder = codecs.getincrementaldecoder(codec)()
    for start in range(0, len(view), _DECODE_BLOCK_BYTES):
        block = view[start : start + _DECODE_BLOCK_BYTES]
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(block, final=start + len(block) >= len(view))
        except UnicodeDecodeError as exc:
            return start - pending + exc.start, exc.reason
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return len(view) - len(decoder.getstate()[0]) + exc.start, exc.reason
    return None


def detect_encoding(view: memoryview) -> str:
    head = bytes(view[:4])
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    bad = first_undecodable(view, "utf-8")
    if bad is None:
        return "utf-8"
    if bytes(view[:8]) == _OLE_MAGIC:
        raise ValidationError(
            f"{NOT_A_TABLE}: it looks like an old Excel .xls workbook; save it as .xlsx or CSV"
        )
    offset = bad[0]
    sample = bytes(view[: DETECT_SAMPLE_BYTES // 2])
    if offset >= len(sample):
        sample += bytes(view[offset : offset + DETECT_SAMPLE_BYTES // 2])
    if b"\x00" in sample:
        raise ValidationError(NOT_A_TABLE)
    matches = charset_normalizer.from_bytes(sample)
    best = matches.best()
    if best is None:
        raise ValidationError(
            f"could not tell which encoding this file uses (it is not UTF-8); {ENCODING_CHOICE}"
        )
    return check_encoding(_PREFERRED_GUESS if _reads_as_well(sample, best.chaos) else best.encoding)


def _reads_as_well(sample: bytes, best_chaos: float) -> bool:
    """Does the preferred encoding read the sample (about as) cleanly?"""
    try:
        text = sample.decode(_PREFERRED_GUESS)
    except UnicodeDecodeError:
        return False
    return mess_ratio(text, maximum_threshold=1.0) <= max(best_chaos, _CLEAN_MESS)


def undecodable_error(
    buffer: io.BytesIO, codec: str, encoding: str, *, guessed: bool
) -> ValidationError:
    view = buffer.getbuffer()
    try:
        found = first_undecodable(view, codec)
        offset = found[0] if found else 0
        line = bytes(view[:offset]).count(b"\n") + 1
        column = offset - (bytes(view[:offset]).rfind(b"\n") + 1) + 1
        byte = view[offset] if offset < len(view) else 0
    finally:
        view.release()
    start = (
        f"could not tell which encoding this file uses for sure: the best guess, {encoding}, "
        "does not fit"
        if guessed
        else f"the CSV is not valid {encoding}"
    )
    return ValidationError(
        f"{start}: byte 0x{byte:02x} at line {line}, column {column} cannot be decoded; "
        f"{ENCODING_CHOICE}",
        details={"line": line, "column": column, "encoding": encoding},
    )

"""Turning a record (a mapping of column to value) into the text that is matched."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def compose_text(record: Mapping[str, object], fields: Sequence[str]) -> str:
    """Join the values of ``fields`` in ``record`` with single spaces.

    Missing fields, ``None``, NaN and blank strings are skipped; other scalars are
    converted with ``str``.

    >>> compose_text({"name": "DSC-W120", "brand": "Sony", "price": None}, ["brand", "name", "price"])
    'Sony DSC-W120'
    >>> compose_text({"title": "Paper", "year": 1999}, ["title", "year"])
    'Paper 1999'
    """
    parts: list[str] = []
    for field in fields:
        value = record.get(field)
        if value is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        text = value if isinstance(value, str) else str(value)
        text = text.strip()
        if text:
            parts.append(text)
    return " ".join(parts)

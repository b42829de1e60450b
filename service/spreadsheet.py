"""The matches CSV as both the service's download and ``chunkmatch run`` write it: safe to
open in a spreadsheet program."""

from __future__ import annotations

# a spreadsheet runs a cell beginning with one of these as a formula (OWASP CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
UTF8_BOM = "\ufeff"
MATCH_CSV_COLUMNS = (
    "item_id",
    "item_text",
    "catalog_id",
    "catalog_text",
    "score",
    "method",
    "reason",
    "reviewed",
)


def spreadsheet_cell(value: str | None) -> str | None:
    """A text cell a spreadsheet shows as text: one that would start a formula gets a
    leading apostrophe.

    >>> spreadsheet_cell("=1+1"), spreadsheet_cell("Sony")
    ("'=1+1", 'Sony')
    """
    if value and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def match_csv_row(
    item_id: str,
    item_text: str | None,
    catalog_id: str | None,
    catalog_text: str | None,
    score: float | None,
    method: str | None,
    reason: str | None,
    *,
    reviewed: bool = False,
) -> list[str | None]:
    """One row under :data:`MATCH_CSV_COLUMNS`; an unmatched item has no catalog columns;
    ``reviewed``: a reviewer decided the item (``true`` / ``false``)."""
    return [
        spreadsheet_cell(item_id),
        spreadsheet_cell(item_text),
        spreadsheet_cell(catalog_id),
        spreadsheet_cell(catalog_text),
        "" if score is None else f"{score:.4f}",
        spreadsheet_cell(method),
        spreadsheet_cell(reason),
        "true" if reviewed else "false",
    ]

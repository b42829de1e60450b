"""Loaders for the Leipzig entity-matching benchmark sets in ../shared/data (beside the repository).

Each :class:`BenchmarkSet` names the item and catalog files, their id columns and
the fields matched; ``load`` reads them (Windows-1252, as the data README says)
and returns the rows as ``(id, text)`` plus the gold pairs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from matching import compose_text

# the shared folder beside the repository (as in CI: a fresh clone with shared/ beside it)
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
ENCODING = "cp1252"


@dataclass(frozen=True, slots=True)
class BenchmarkSet:
    name: str
    folder: str
    items_file: str
    catalog_file: str
    gold_file: str
    item_fields: tuple[str, ...]
    catalog_fields: tuple[str, ...]


ABT_BUY = BenchmarkSet(
    "Abt-Buy",
    "Abt-Buy",
    "Abt.csv",
    "Buy.csv",
    "abt_buy_perfectMapping.csv",
    ("name",),
    ("name", "manufacturer"),
)
ABT_BUY_STANDARD = BenchmarkSet(
    "Abt-Buy (standard fields)",
    "Abt-Buy",
    "Abt.csv",
    "Buy.csv",
    "abt_buy_perfectMapping.csv",
    ("name", "description"),
    ("name", "manufacturer", "description"),
)
AMAZON_GOOGLE = BenchmarkSet(
    "Amazon-Google",
    "Amazon-GoogleProducts",
    "Amazon.csv",
    "GoogleProducts.csv",
    "Amzon_GoogleProducts_perfectMapping.csv",
    ("title", "manufacturer"),
    ("name", "manufacturer"),
)
DBLP_ACM = BenchmarkSet(
    "DBLP-ACM",
    "DBLP-ACM",
    "DBLP2.csv",
    "ACM.csv",
    "DBLP-ACM_perfectMapping.csv",
    ("title", "authors", "venue", "year"),
    ("title", "authors", "venue", "year"),
)
ALL_SETS = (ABT_BUY, AMAZON_GOOGLE, DBLP_ACM, ABT_BUY_STANDARD)


def read_rows(path: Path) -> list[dict[str, str]]:
    """Read a CSV file of the benchmark collection as a list of dicts."""
    with path.open(encoding=ENCODING, newline="") as handle:
        return list(csv.DictReader(handle))


def load(
    spec: BenchmarkSet,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], set[tuple[str, str]]]:
    """Return ``(items, catalog, gold)`` for ``spec``."""
    folder = DATA_DIR / spec.folder
    items = [
        (row["id"], compose_text(row, spec.item_fields))
        for row in read_rows(folder / spec.items_file)
    ]
    catalog = [
        (row["id"], compose_text(row, spec.catalog_fields))
        for row in read_rows(folder / spec.catalog_file)
    ]
    gold_rows = read_rows(folder / spec.gold_file)
    left, right = list(gold_rows[0].keys())
    gold = {(row[left], row[right]) for row in gold_rows}
    return items, catalog, gold

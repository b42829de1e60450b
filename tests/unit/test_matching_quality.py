"""A quality floor on the Abt-Buy benchmark, so a regression in matching shows up in tests.

Skipped when the benchmark data is not present (it lives outside the repository).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from matching import DEFAULT_THRESHOLD, CatalogIndex, compose_text

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "Abt-Buy"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="benchmark data not available")


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="cp1252", newline="") as handle:
        return list(csv.DictReader(handle))


def test_abt_buy_f1_at_default_threshold() -> None:
    items = [(r["id"], compose_text(r, ["name"])) for r in _rows("Abt.csv")]
    catalog = [(r["id"], compose_text(r, ["name", "manufacturer"])) for r in _rows("Buy.csv")]
    gold = {(r["idAbt"], r["idBuy"]) for r in _rows("abt_buy_perfectMapping.csv")}
    results = CatalogIndex.build(catalog).match(items, threshold=DEFAULT_THRESHOLD)
    correct = sum((r.item_id, r.catalog_id) in gold for r in results)
    precision, recall = correct / len(results), correct / len(gold)
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.85, (precision, recall, f1)
    assert {r.method for r in results} >= {"code", "fuzzy"}

"""Quality floors on the Abt-Buy benchmark, so a regression in matching shows up in tests.

Floors sit just below what the default configuration reaches (see
``benchmarks/matching_quality.py``). Skipped when the benchmark data is not
present: it lives outside the repository, in ``shared/data`` beside the clone (see the
README's "Benchmarks").
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from matching import DEFAULT_THRESHOLD, CatalogIndex, compose_text

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "Abt-Buy"
MISSING_DATA = (
    f"benchmark data not available: these tests read the Abt-Buy set from {DATA} "
    "(the Leipzig entity-matching benchmark sets, in shared/data beside the repository); "
    "see the README's Benchmarks section"
)
pytestmark = pytest.mark.skipif(not DATA.exists(), reason=MISSING_DATA)


def test_the_skip_message_says_what_is_missing_and_where() -> None:
    assert str(DATA) in MISSING_DATA and "README" in MISSING_DATA


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="cp1252", newline="") as handle:
        return list(csv.DictReader(handle))


def _gold() -> set[tuple[str, str]]:
    return {(r["idAbt"], r["idBuy"]) for r in _rows("abt_buy_perfectMapping.csv")}


def _f1(index: CatalogIndex, items: list[tuple[str, str]], gold: set[tuple[str, str]]) -> float:
    results = index.match(items, threshold=DEFAULT_THRESHOLD)
    correct = sum((r.item_id, r.catalog_id) in gold for r in results)
    precision, recall = correct / len(results), correct / len(gold)
    return 2 * precision * recall / (precision + recall)


def test_abt_buy_name_only_f1_at_default_threshold() -> None:
    items = [(r["id"], compose_text(r, ["name"])) for r in _rows("Abt.csv")]
    catalog = [(r["id"], compose_text(r, ["name", "manufacturer"])) for r in _rows("Buy.csv")]
    index = CatalogIndex.build(catalog)
    assert _f1(index, items, _gold()) >= 0.90
    assert {r.method for r in index.match(items)} >= {"code", "fuzzy"}


def test_abt_buy_standard_fields_f1_and_candidate_recall() -> None:
    items = [(r["id"], compose_text(r, ["name", "description"])) for r in _rows("Abt.csv")]
    catalog = [
        (r["id"], compose_text(r, ["name", "manufacturer", "description"]))
        for r in _rows("Buy.csv")
    ]
    gold = _gold()
    index = CatalogIndex.build(catalog)
    assert _f1(index, items, gold) >= 0.91
    wanted = dict(gold)
    texts = dict(items)
    sample = sorted(wanted)[::4]
    found = sum(wanted[i] in {c for c, _ in index.candidates(texts[i], k=10)} for i in sample)
    assert found / len(sample) >= 0.98


def test_abt_buy_open_world_rejects_most_items_without_a_counterpart() -> None:
    """Two thirds of the items lose their counterpart: the default still finds the rest
    and leaves most of the others unmatched (benchmarks/open_world.py)."""
    from benchmarks.open_world import MatchSet, open_world

    items = [(r["id"], compose_text(r, ["name", "description"])) for r in _rows("Abt.csv")]
    catalog = [
        (r["id"], compose_text(r, ["name", "manufacturer", "description"]))
        for r in _rows("Buy.csv")
    ]
    variant = open_world(MatchSet("Abt-Buy", items, catalog, _gold()))
    index = CatalogIndex.build(variant.catalog)
    results = index.match(variant.items)
    correct = sum((r.item_id, r.catalog_id) in variant.gold for r in results)
    precision, recall = correct / len(results), correct / len(variant.gold)
    assert precision >= 0.85 and recall >= 0.8
    without = {i for i, _ in items} - {i for i, _ in variant.gold}
    wrongly_matched = sum(r.item_id in without for r in results)
    assert wrongly_matched / len(without) <= 0.1

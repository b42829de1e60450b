"""Precision and recall of the web-search stage without an LLM, on results that mix the
right product with junk and an unrelated real product.

Items are Abt-Buy's Abt names, the catalog Buy's names and makers, open-world (half the
matchable items lose their counterpart: their right answer is "none"). For each item
the "web" returns, in a seeded random order, the right product's page (its Buy title
and description, with a shop suffix; on the web even when the catalog lacks it), an
unrelated real product's page (another catalog record) and two junk pages. It compares
the rule the stage used before (accept the best candidate when its score reaches the
threshold) with :func:`matching.web_decision.choose_without_model`.

    .venv/bin/python benchmarks/web_search_precision.py [--items 300] [--threshold 0.26] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matching import CatalogIndex  # noqa: E402
from matching.index import DEFAULT_THRESHOLD  # noqa: E402
from matching.web_decision import choose_without_model  # noqa: E402
from matching.websearch import (  # noqa: E402
    DEFAULT_SEARCH_RESULTS,
    SearchResult,
    search_candidates,
)

sys.path.insert(0, str(ROOT / "benchmarks"))
from datasets import ABT_BUY, DATA_DIR, load, read_rows  # noqa: E402
from open_world import MatchSet, open_world  # noqa: E402

SEED = 20261201
SHOPS = ("Best Buy", "Amazon.com", "Newegg", "B&H Photo")
JUNK = (
    ("Today's top deals on electronics | DealFinder", "Save big on thousands of items."),
    ("Sign in or create an account", "Manage your orders and lists."),
    ("Customer reviews and questions - Forum", "Join the discussion."),
    ("Page not found", "The page you requested could not be found."),
)


class MixedWeb:
    """A search provider answering each item with its prepared mixed results."""

    def __init__(self, pages: dict[str, list[SearchResult]]) -> None:
        self.pages = pages

    async def search(
        self, query: str, *, limit: int = DEFAULT_SEARCH_RESULTS
    ) -> list[SearchResult]:
        return self.pages.get(query, [])[:limit]


def mixed_pages(
    base: MatchSet, catalog_rows: dict[str, dict[str, str]], catalog_ids: list[str], seed: int
) -> dict[str, list[SearchResult]]:
    rng = random.Random(seed)
    right = dict(sorted(base.gold))
    pages: dict[str, list[SearchResult]] = {}
    for item_id, text in base.items:
        results = []
        if item_id in right:
            row = catalog_rows[right[item_id]]
            shop = rng.choice(SHOPS)
            results.append(
                SearchResult(
                    f"{row['name']} | {shop}", "https://shop.example/p", row["description"][:160]
                )
            )
        other = catalog_rows[rng.choice([c for c in catalog_ids if c != right.get(item_id)])]
        results.append(
            SearchResult(
                f"{other['name']} - {rng.choice(SHOPS)}",
                "https://other.example/p",
                other["description"][:160],
            )
        )
        results += [SearchResult(t, "https://junk.example/", c) for t, c in rng.sample(JUNK, 2)]
        rng.shuffle(results)
        pages[text] = results
    return pages


def score(predicted: set[tuple[str, str]], gold: set[tuple[str, str]]) -> tuple[float, float]:
    correct = len(predicted & gold)
    precision = correct / len(predicted) if predicted else 1.0
    recall = correct / len(gold) if gold else 1.0
    return precision, recall


async def run(items: int, threshold: float, seed: int) -> None:
    all_items, catalog, gold = load(ABT_BUY)
    rng = random.Random(seed)
    chosen = dict(rng.sample(all_items, items))
    base = MatchSet(
        "Abt-Buy sample",
        sorted(chosen.items()),
        catalog,
        {(i, c) for i, c in gold if i in chosen},
    )
    world = open_world(base, share=0.5, seed=seed)
    catalog_rows = {r["id"]: r for r in read_rows(DATA_DIR / ABT_BUY.folder / ABT_BUY.catalog_file)}
    in_catalog = [c for c, _ in world.catalog]
    # the right page exists on the web whether or not the catalog still holds it
    provider = MixedWeb(mixed_pages(base, catalog_rows, in_catalog, seed))
    index = CatalogIndex.build(world.catalog)
    texts = dict(world.catalog)
    before: set[tuple[str, str]] = set()
    after: set[tuple[str, str]] = set()
    for item_id, text in world.items:
        found = await search_candidates(index, text, provider, catalog_texts=texts, k=10)
        if found.candidates and found.candidates[0].score >= threshold:
            before.add((item_id, found.candidates[0].catalog_id))
        decided = choose_without_model(text, found, threshold=threshold)
        if decided is not None:
            after.add((item_id, decided.catalog_id))
    matchable = len({i for i, _ in world.gold})
    print(
        f"{len(world.items)} items ({matchable} with a counterpart in the catalog of "
        f"{len(world.catalog)}), threshold {threshold:.2f}"
    )
    for name, predicted in (
        ("before (best candidate >= threshold)", before),
        ("after (choose_without_model)", after),
    ):
        precision, recall = score(predicted, world.gold)
        print(f"{name}: matched {len(predicted)}, precision {precision:.3f}, recall {recall:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--seed", type=int, default=SEED, help="the sample, world and page order")
    args = parser.parse_args()
    asyncio.run(run(args.items, args.threshold, args.seed))


if __name__ == "__main__":
    main()

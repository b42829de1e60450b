"""A synthetic catalog / item set for speed benchmarks, seeded with real titles.

``make_synthetic(n_catalog, n_items, seed)`` returns ``(catalog_rows, item_rows,
gold)``: rows are dicts with ``"id"`` and ``"name"``; ``gold`` maps item id to
its catalog id, or to ``None`` for the items that have no counterpart.

- The catalog starts from the product (and paper) titles of the benchmark sets;
  the rest are *siblings*: copies whose numbers / model codes are changed or
  which gain a variant word, the hard negatives of product matching.
- Items are perturbed copies of catalog records (typos, dropped or reordered
  words, case and punctuation changes); a share are perturbed titles that are not
  in the catalog at all.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.datasets import DATA_DIR, read_rows  # noqa: E402

UNMATCHED_SHARE = 0.1
_SEED_COLUMNS = (
    ("Abt-Buy/Abt.csv", "name"),
    ("Abt-Buy/Buy.csv", "name"),
    ("Amazon-GoogleProducts/Amazon.csv", "title"),
    ("Amazon-GoogleProducts/GoogleProducts.csv", "name"),
    ("DBLP-ACM/DBLP2.csv", "title"),
    ("DBLP-ACM/ACM.csv", "title"),
)
_VARIANT_WORDS = (
    "II",
    "III",
    "Plus",
    "Pro",
    "Mini",
    "XL",
    "Black",
    "White",
    "Silver",
    "Red",
    "Blue",
    "2-Pack",
    "Kit",
    "Bundle",
    "Deluxe",
    "Refurbished",
    "Wireless",
    "HD",
    "Edition 2",
)
_DIGITS = re.compile(r"\d+")


def seed_titles() -> list[str]:
    """Distinct real titles from the benchmark CSVs, in file order."""
    seen: set[str] = set()
    titles: list[str] = []
    for relative, column in _SEED_COLUMNS:
        for row in read_rows(DATA_DIR / relative):
            title = " ".join((row.get(column) or "").split())
            if title and title.lower() not in seen:
                seen.add(title.lower())
                titles.append(title)
    return titles


def make_sibling(title: str, rng: random.Random) -> str:
    """A different product that looks almost the same: another number or a variant word."""
    runs = list(_DIGITS.finditer(title))
    if runs and rng.random() < 0.75:
        run = rng.choice(runs)
        width = len(run.group())
        replacement = str(rng.randrange(10 ** (width - 1) if width > 1 else 0, 10**width))
        if replacement == run.group():
            replacement = str((int(replacement) + 1) % (10**width)).zfill(width)
        return title[: run.start()] + replacement + title[run.end() :]
    words = title.split()
    words.insert(rng.randrange(len(words) + 1), rng.choice(_VARIANT_WORDS))
    return " ".join(words)


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + rng.choice("aeiounrst") + word[i:]
    return word[:i] + rng.choice("aeiounrst") + word[i + 1 :]


def perturb(title: str, rng: random.Random) -> str:
    """A plausible differently-written copy of ``title``."""
    words = title.split()
    if len(words) > 3 and rng.random() < 0.4:
        del words[rng.randrange(len(words))]
    if len(words) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    if rng.random() < 0.5:
        i = rng.randrange(len(words))
        words[i] = _typo(words[i], rng)
    text = " ".join(words)
    roll = rng.random()
    if roll < 0.2:
        text = text.lower()
    elif roll < 0.3:
        text = text.upper()
    if rng.random() < 0.3:
        text = text.replace("-", " ") if "-" in text else text.replace(" ", " - ", 1)
    if rng.random() < 0.2:
        text = re.sub(r"[(),]", "", text)
    return text


def make_synthetic(
    n_catalog: int, n_items: int, seed: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, str | None]]:
    """Build ``(catalog_rows, item_rows, gold)``; see the module docstring."""
    rng = random.Random(seed)
    seeds = seed_titles()
    rng.shuffle(seeds)
    n_unmatched = int(n_items * UNMATCHED_SHARE)
    # At most a tenth of the seed titles are held out; unmatched items reuse them.
    held_out = seeds[: min(n_unmatched, len(seeds) // 10)]
    base = seeds[len(held_out) :][:n_catalog]
    titles = list(base)
    taken = {t.lower() for t in titles} | {t.lower() for t in held_out}
    attempts = 0
    while len(titles) < n_catalog:
        attempts += 1
        parent = rng.choice(titles if attempts % 3 else base)
        sibling = make_sibling(parent, rng)
        if sibling.lower() not in taken:
            taken.add(sibling.lower())
            titles.append(sibling)
    rng.shuffle(titles)
    catalog = [{"id": f"c{n}", "name": t} for n, t in enumerate(titles)]
    items: list[dict[str, str]] = []
    gold: dict[str, str | None] = {}
    for n in range(n_items):
        item_id = f"i{n}"
        if n < n_unmatched and held_out:
            items.append({"id": item_id, "name": perturb(held_out[n % len(held_out)], rng)})
            gold[item_id] = None
        else:
            target = catalog[rng.randrange(len(catalog))]
            items.append({"id": item_id, "name": perturb(target["name"], rng)})
            gold[item_id] = target["id"]
    order = list(range(n_items))
    rng.shuffle(order)
    return catalog, [items[i] for i in order], gold

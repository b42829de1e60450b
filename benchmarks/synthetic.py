"""A synthetic catalog / item set for speed benchmarks, seeded with real titles.

``make_synthetic(n_catalog, n_items, seed)`` returns ``(catalog_rows, item_rows,
gold)``: rows are dicts with ``"id"`` and ``"name"``; ``gold`` maps item id to
its catalog id, or to ``None`` for the items that have no counterpart.

- The catalog starts from the product (and paper) titles of the benchmark sets,
  one title per real-world entity: the sets' gold files say which titles name
  the same product or paper, and only the first of such a group is used.
  The rest are *siblings*: copies whose numbers / model codes are changed or
  which gain a variant word, the hard negatives of product matching.
- Items are perturbed copies of catalog records (typos, dropped or reordered
  words, case and punctuation changes). A perturbation never touches the tokens
  that tell a record from its siblings (tokens with digits, variant words), so
  the gold record stays the one right answer.
- A share of the items are perturbed titles of entities held out of the catalog
  altogether (with every title of their group), so they truly have no match.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.datasets import DATA_DIR, read_rows  # noqa: E402

UNMATCHED_SHARE = 0.1
# (left file, its title column, right file, its title column, gold file of the pair)
_SEED_SETS = (
    ("Abt-Buy", "Abt.csv", "name", "Buy.csv", "name", "abt_buy_perfectMapping.csv"),
    (
        "Amazon-GoogleProducts",
        "Amazon.csv",
        "title",
        "GoogleProducts.csv",
        "name",
        "Amzon_GoogleProducts_perfectMapping.csv",
    ),
    ("DBLP-ACM", "DBLP2.csv", "title", "ACM.csv", "title", "DBLP-ACM_perfectMapping.csv"),
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
_VARIANT_KEYS = frozenset(w.lower() for v in _VARIANT_WORDS for w in v.split())


def seed_titles() -> list[str]:
    """One real title per entity of the benchmark sets, in file order.

    Titles that the gold files pair up (an Abt and a Buy name of one product,
    say), or that are equal ignoring case, are one entity; its first title stands
    for it.
    """
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    order: list[str] = []
    for folder, left_file, left_col, right_file, right_col, gold_file in _SEED_SETS:
        ids: dict[tuple[str, str], str] = {}
        for side, name, column in (("l", left_file, left_col), ("r", right_file, right_col)):
            for row in read_rows(DATA_DIR / folder / name):
                title = " ".join((row.get(column) or "").split())
                if not title:
                    continue
                key = title.lower()
                if key not in parent:
                    parent[key] = key
                    order.append(title)
                ids[(side, row["id"])] = key
        for row in read_rows(DATA_DIR / folder / gold_file):
            left_id, right_id = list(row.values())[:2]
            a, b = ids.get(("l", left_id)), ids.get(("r", right_id))
            if a is not None and b is not None:
                root_a, root_b = find(a), find(b)
                if root_a != root_b:
                    parent[max(root_a, root_b)] = min(root_a, root_b)
    seen: set[str] = set()
    titles: list[str] = []
    for title in order:
        root = find(title.lower())
        if root not in seen:
            seen.add(root)
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


def _distinguishing(word: str) -> bool:
    """A token that may be all that tells a record from its siblings."""
    return bool(_DIGITS.search(word)) or word.strip("()[],.-").lower() in _VARIANT_KEYS


def perturb(title: str, rng: random.Random) -> str:
    """A plausible differently-written copy of ``title`` that keeps its distinguishing tokens."""
    words = title.split()
    free = [i for i, w in enumerate(words) if not _distinguishing(w)]
    if len(words) > 3 and free and rng.random() < 0.4:
        del words[rng.choice(free)]
        free = [i for i, w in enumerate(words) if not _distinguishing(w)]
    if len(words) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        free = [i for i, w in enumerate(words) if not _distinguishing(w)]
    if free and rng.random() < 0.5:
        i = rng.choice(free)
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

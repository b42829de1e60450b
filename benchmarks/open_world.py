"""Open-world variants of the benchmark sets: most items lose their counterpart.

Our three visible sets are kind: nearly every item has a counterpart in the
catalog, so a matcher that always accepts its best candidate looks good there.
Real catalogs are not like that. ``open_world(items, catalog, gold, share, seed)``
removes from the catalog every counterpart of a random ``share`` (default two
thirds) of the matchable items; their right answer becomes "none", and any other
item that pointed at a removed record loses that gold pair too.

The variant is seeded, so every run (and every fit) sees the same one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from matching import extract_codes

OPEN_WORLD_SHARE = 2 / 3
OPEN_WORLD_SEED = 20261201


@dataclass(frozen=True, slots=True)
class MatchSet:
    """Items, catalog and gold pairs of one evaluation set."""

    name: str
    items: list[tuple[str, str]]
    catalog: list[tuple[str, str]]
    gold: set[tuple[str, str]]

    @property
    def unmatchable_share(self) -> float:
        matchable = {i for i, _ in self.gold}
        return 1.0 - len(matchable) / len(self.items) if self.items else 0.0


def open_world(
    base: MatchSet, *, share: float = OPEN_WORLD_SHARE, seed: int = OPEN_WORLD_SEED
) -> MatchSet:
    """``base`` with the counterparts of ``share`` of its matchable items removed.

    >>> base = MatchSet("t", [("a", "x"), ("b", "y"), ("c", "z")],
    ...                 [("1", "x"), ("2", "y"), ("3", "z"), ("4", "w")],
    ...                 {("a", "1"), ("b", "2"), ("c", "3")})
    >>> variant = open_world(base, share=2 / 3, seed=1)
    >>> len(variant.gold), len(variant.catalog)
    (1, 2)
    """
    matchable = sorted({i for i, _ in base.gold})
    rng = random.Random(seed)
    chosen = set(rng.sample(matchable, round(share * len(matchable))))
    removed = {c for i, c in base.gold if i in chosen}
    catalog = [(c, t) for c, t in base.catalog if c not in removed]
    gold = {(i, c) for i, c in base.gold if c not in removed}
    return MatchSet(f"{base.name} open world", base.items, catalog, gold)


FRAGMENT_SHARE = 0.1
_WORD = re.compile(r"[^\W\d_]{3,}")


def with_fragments(
    base: MatchSet, *, share: float = FRAGMENT_SHARE, seed: int = OPEN_WORLD_SEED
) -> MatchSet:
    """``base`` plus one-word items (``share`` of its item count) that no record answers.

    Each is one word (three letters or more) of a random item: a brand, a city, a
    product line. A single word names no one record, whatever it is found in; a
    catalog in the wild gets such items from half-filled rows and sparse fields.

    >>> base = MatchSet("t", [("a", "acme rocket skates")], [("1", "acme rocket skates")],
    ...                 {("a", "1")})
    >>> [text in {"acme", "rocket", "skates"} for _, text in with_fragments(base, share=1).items[1:]]
    [True]
    """
    rng = random.Random(seed)
    fragments = []
    for n in range(round(share * len(base.items))):
        words = _WORD.findall(rng.choice(base.items)[1])
        if words:
            fragments.append((f"fragment-{n}", rng.choice(words).lower()))
    return MatchSet(f"{base.name} + fragments", base.items + fragments, base.catalog, base.gold)


_COLOURS = ("black", "white", "silver", "blue", "red", "pink", "green", "grey")
_TOKEN = re.compile(r"[^\s,;()]+")
_QUANTITY_LIKE = re.compile(r"\b(\d+)(\s?)(gb|tb|mb|mp|mm|in|inch|pack|pk|oz|lb|w|ghz)\b", re.I)


def _other_digit(token: str, rng: random.Random) -> str:
    at = max(n for n, ch in enumerate(token) if ch.isdigit())
    return token[:at] + str((int(token[at]) + rng.randint(1, 9)) % 10) + token[at + 1 :]


def _sibling(text: str, rng: random.Random) -> str | None:
    """``text`` as a sibling article, or None when it offers no way to make one: every
    model code of the text a digit apart (another model), half the time with one
    quantity doubled or halved, or one colour changed, everywhere it is written; a
    text without codes gets the quantity or colour change alone."""
    ways = []
    tokens = [t for t in _TOKEN.findall(text) if extract_codes(t)]
    if tokens:
        shift = {}
        for token in tokens:
            code = next(iter(extract_codes(token)))
            shift.setdefault(code, _other_digit(code, rng))

        def recode() -> str:
            def swap(match: re.Match[str]) -> str:
                token = match.group(0)
                codes = extract_codes(token)
                if not codes:
                    return token
                wanted = shift[next(iter(codes))]
                # keep the token's own joiners: change the same last digit
                last = max(n for n, ch in enumerate(token) if ch.isdigit())
                digit = next(ch for ch in reversed(wanted) if ch.isdigit())
                return token[:last] + digit + token[last + 1 :]

            return _TOKEN.sub(swap, text)

        ways.append(recode)
    quantities = list(_QUANTITY_LIKE.finditer(text))
    if quantities:
        q = rng.choice(quantities)
        value = int(q.group(1))
        other = str(value * 2 if rng.random() < 0.5 or value < 2 else value // 2)
        unit = q.group(3)
        pattern = re.compile(rf"\b{value}(\s?){re.escape(unit)}\b", re.I)
        ways.append(lambda: pattern.sub(lambda m: other + m.group(1) + unit, text))
    colours = [c for c in _COLOURS if re.search(rf"\b{c}\b", text, re.I)]
    if colours:
        old = rng.choice(colours)
        new = rng.choice([c for c in _COLOURS if c not in colours])
        ways.append(lambda: re.sub(rf"\b{old}\b", new, text, flags=re.I))
    if not ways:
        return None
    if not tokens:
        return rng.choice(ways)()
    # a listing that names its model code is another article only under another code;
    # half the time it also differs in a quantity or a colour
    sibling = ways[0]()
    if len(ways) > 1 and rng.random() < 0.5:
        text = sibling
        sibling = rng.choice(ways[1:])()
    return sibling


def with_siblings(base: MatchSet, *, per_record: int = 2, seed: int = OPEN_WORLD_SEED) -> MatchSet:
    """``base`` with up to ``per_record`` sibling articles added to the catalog per record
    (see :func:`_sibling`: its model codes a digit apart, sometimes a quantity or a
    colour too; no item's counterpart). Applied before :func:`open_world`,
    an item whose record is removed still finds its record's siblings: a catalog
    full of variants that lacks the item's own.

    >>> base = MatchSet("t", [("a", "Sony KDL-40V3000 Black")],
    ...                 [("1", "Sony KDL-40V3000 Black")], {("a", "1")})
    >>> [t for _, t in with_siblings(base, per_record=1, seed=3).catalog[1:]]
    ['Sony KDL-40V3004 Black']
    """
    rng = random.Random(seed)
    siblings = []
    for record_id, text in base.catalog:
        made = {text}
        for n in range(per_record):
            sibling = _sibling(text, rng)
            if sibling is not None and sibling not in made:
                made.add(sibling)
                siblings.append((f"sibling-{record_id}-{n}", sibling))
    return MatchSet(f"{base.name} + siblings", base.items, base.catalog + siblings, base.gold)

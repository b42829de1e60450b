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
from dataclasses import dataclass

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

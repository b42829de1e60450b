"""Long-lived values (catalog indexes, peers) leave the cycle collector's passes once built,
and reference counting still frees them when the cache lets them go."""

from __future__ import annotations

import gc

from service.catalog_index import IndexCache


def walked() -> set[int]:
    """The objects a full pass of the cycle collector walks."""
    return {id(o) for o in gc.get_objects()}


async def test_a_built_index_leaves_the_collectors_passes_and_is_still_freed() -> None:
    records = [(f"r{i}", f"Acme widget model {i} deluxe") for i in range(300)]
    items = [(f"i{i}", f"acme widget {i}") for i in range(50)]

    async def load() -> list[tuple[str, str]]:
        return records

    async def load_items() -> list[tuple[str, str]]:
        return items

    cache = IndexCache(max_entries=2)
    gc.unfreeze()
    try:
        entry, peers = await cache.with_peers(
            ("p", 1, ("name",)), load, ("p", 1, ("name",)), load_items
        )
        assert peers is not None
        passes = walked()
        assert id(entry) not in passes and id(entry.index) not in passes
        assert id(peers) not in passes
        frozen = gc.get_freeze_count()
        cache.forget("p")
        del entry, peers, passes
        assert gc.get_freeze_count() < frozen  # freed by reference counting
    finally:
        gc.unfreeze()

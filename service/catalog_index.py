"""Catalog indexes, built once per catalog version per process and kept in a small LRU.

A cache, not truth: the key includes the catalog version PostgreSQL hands out, so an
upload to the catalog makes every process rebuild on its next chunk. Each entry also
keeps the *peers* used with it lately (a project's items as rivals for the same records,
see :mod:`matching.peers`), keyed by the items' version and fields likewise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from matching import CatalogIndex
from matching.peers import PeerSet

logger = logging.getLogger("chunkmatch.index")

IndexKey = tuple[str, int, tuple[str, ...]]
PeersKey = tuple[str, int, tuple[str, ...]]
MAX_PEER_SETS = 4
"""Peer sets kept per catalog index (each costs about 1 KB per item)."""


@dataclass(frozen=True)
class CatalogEntry:
    """A catalog version's index, and its records' texts (what an LLM is shown)."""

    index: CatalogIndex
    texts: dict[str, str]
    _peers: OrderedDict[PeersKey, PeerSet] = field(default_factory=OrderedDict, repr=False)
    _building: dict[PeersKey, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def peers(
        self, key: PeersKey, load: Callable[[], Awaitable[Sequence[tuple[str, str]]]]
    ) -> PeerSet:
        """The peers for ``key`` (project, items version, item fields), built from
        ``load()`` at most once at a time."""
        if key in self._peers:
            self._peers.move_to_end(key)
            return self._peers[key]
        lock = self._building.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._peers:
                started = time.perf_counter()
                items = await load()
                self._peers[key] = await asyncio.to_thread(self.index.peers, items)
                logger.info(
                    "built the peers of project %s items version %s: %d items in %.2fs",
                    key[0],
                    key[1],
                    len(items),
                    time.perf_counter() - started,
                )
                for old in [k for k in self._peers if k[0] == key[0] and k[1] < key[1]]:
                    del self._peers[old]
                while len(self._peers) > MAX_PEER_SETS:
                    self._peers.popitem(last=False)
        self._building.pop(key, None)
        return self._peers[key]


class IndexCache:
    def __init__(self, *, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[IndexKey, CatalogEntry] = OrderedDict()
        self._building: dict[IndexKey, asyncio.Lock] = {}

    async def get(
        self,
        key: IndexKey,
        load: Callable[[], Awaitable[Sequence[tuple[str, str]]]],
    ) -> CatalogEntry:
        """The index for ``key``, built from ``load()`` at most once at a time."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        lock = self._building.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._entries:
                return self._entries[key]
            started = time.perf_counter()
            records = await load()
            index = CatalogEntry(
                await asyncio.to_thread(CatalogIndex.build, records), dict(records)
            )
            logger.info(
                "built catalog index project=%s version=%s records=%d in %.2fs",
                key[0],
                key[1],
                len(records),
                time.perf_counter() - started,
            )
            self._entries[key] = index
            # drop older versions of the same catalog at once, then the least recently used
            for old in [k for k in self._entries if k[0] == key[0] and k[1] < key[1]]:
                del self._entries[old]
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        self._building.pop(key, None)
        return index

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from matching import CatalogIndex
from matching.peers import PeerDraft, PeerSet
from matching.progress import Progress, scaled
from matching.vectors import CharNgramVectoriser
from service import metrics
from service.heap import settle_long_lived
from service.match_processes import IndexKey, MatchProcesses, PeersKey

logger = logging.getLogger("chunkmatch.index")

MAX_PEER_SETS = 4
"""Peer sets kept per catalog index (each costs about 1 KB per item)."""

LOADED_SHARE = 0.1
"""Share of a catalog index's build reported once its records are read from PostgreSQL."""

DRAFT_BEFORE_PROGRESS = 0.9
"""Share of an index's build after which its peers are no longer drafted beside it. A
draft takes about half as long as the whole build once the build's vocabulary is fitted,
peers built after the index two thirds of it, and drafted peers a tenth."""

VOCABULARY_POLL_SECONDS = 0.02
"""How often a job waiting to draft its peers looks whether the index's vocabulary is fitted."""

V = TypeVar("V")


class VersionedCache(Generic[V]):
    """Values keyed by ``(project, version, fields)``, each built at most once at a time,
    kept in a small LRU; a newer version of a project's key drops the older ones."""

    def __init__(self, *, max_entries: int, what: str) -> None:
        self.max_entries = max_entries
        self.what = what
        self._entries: OrderedDict[IndexKey, V] = OrderedDict()
        self._building: dict[IndexKey, asyncio.Lock] = {}
        # share done of the builds under way (written by the building thread)
        self._progress: dict[IndexKey, float] = {}

    def peek(self, key: IndexKey) -> V | None:
        """The value for ``key`` if it is built, without building it."""
        return self._entries.get(key)

    def progress(self, key: IndexKey) -> float:
        """How far the build of ``key`` is (0..1): 1.0 when built, 0.0 when not started."""
        if key in self._entries:
            return 1.0
        return self._progress.get(key, 0.0)

    async def get_or_build(
        self, key: IndexKey, build: Callable[[Progress], Awaitable[tuple[V, int]]]
    ) -> V:
        """The value for ``key``; ``build(progress)`` returns it and how many records it
        holds, reporting its progress (0..1) as it goes."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        lock = self._building.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._entries:
                started = time.perf_counter()
                self._progress[key] = 0.0

                def report(done: float) -> None:
                    self._progress[key] = done

                try:
                    value, size = await build(report)
                finally:
                    self._progress.pop(key, None)
                logger.info(
                    "built %s project=%s version=%s records=%d in %.2fs",
                    self.what,
                    key[0],
                    key[1],
                    size,
                    time.perf_counter() - started,
                )
                self._entries[key] = value
                settle_long_lived()
                for old in [k for k in self._entries if k[0] == key[0] and k[1] < key[1]]:
                    del self._entries[old]
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        self._building.pop(key, None)
        return self._entries[key]

    def forget(self, project: str) -> None:
        """Drop every entry of ``project`` (its records were deleted)."""
        for key in [k for k in self._entries if k[0] == project]:
            del self._entries[key]


@dataclass(frozen=True)
class CatalogEntry:
    """A catalog version's index, its records' texts (what an LLM is shown), and the
    peers used with it lately."""

    index: CatalogIndex
    texts: dict[str, str]
    key: IndexKey | None = None
    # helper processes that hold copies of the index, and are sent its peers
    processes: MatchProcesses | None = field(default=None, repr=False, compare=False)
    _peer_sets: VersionedCache[PeerSet] = field(
        default_factory=lambda: VersionedCache(max_entries=MAX_PEER_SETS, what="the peers of"),
        repr=False,
    )

    # the texts each peer set was built from, by item id: a chunk's items are read from
    # here instead of PostgreSQL (kept only while the same peer set is cached)
    _peer_texts: dict[PeersKey, tuple[PeerSet, dict[str, str]]] = field(
        default_factory=dict, repr=False
    )

    @property
    def _peers(self) -> OrderedDict[PeersKey, PeerSet]:
        return self._peer_sets._entries

    def peek_peers(self, key: PeersKey) -> PeerSet | None:
        """The peers for ``key`` if they are built, without building them."""
        return self._peer_sets.peek(key)

    def peers_progress(self, key: PeersKey) -> float:
        """How far the build of the peers for ``key`` is (0..1)."""
        return self._peer_sets.progress(key)

    async def peers(
        self,
        key: PeersKey,
        load: Callable[[], Awaitable[Sequence[tuple[str, str]]]],
        draft: Draft | None = None,
    ) -> PeerSet:
        """The peers for ``key`` (project, items version, item fields), built from
        ``load()`` at most once at a time; from ``draft``'s items and draft when given
        (one that fails is logged and the peers are built here)."""

        async def build(progress: Progress) -> tuple[PeerSet, int]:
            items = await load() if draft is None else draft.items
            drafted = await draft.peers() if draft is not None else None
            if drafted is not None and not self.index.fits(drafted):
                logger.warning("drafted peers of %s used another vocabulary; not used", key)
                drafted = None
            if drafted is not None:
                metrics.helper_items(len(items), "drafted")
            peers = await asyncio.to_thread(
                self.index.peers, items, progress=progress, draft=drafted
            )
            self._peer_texts[key] = (peers, dict(items))
            if self.processes is not None and self.key is not None:
                await self.processes.add_peers(self.key, key, peers)
            return peers, len(items)

        peers = await self._peer_sets.get_or_build(key, build)
        for old in [k for k in self._peer_texts if self._peer_sets.peek(k) is None]:
            del self._peer_texts[old]  # its peer set left the cache
        return peers

    def peer_texts(self, key: PeersKey) -> Mapping[str, str] | None:
        """The item texts (by id) the cached peers for ``key`` were built from; None
        when those peers are not cached."""
        kept = self._peer_texts.get(key)
        if kept is None or self._peer_sets.peek(key) is not kept[0]:
            return None
        return kept[1]


@dataclass(frozen=True)
class Draft:
    """A job's items, and what awaits their peers drafted by a helper process (None: no
    helper was free once they were read)."""

    items: Sequence[tuple[str, str]]
    drafted: Callable[[], Awaitable[PeerDraft]] | None

    async def peers(self) -> PeerDraft | None:
        """The draft; None if no helper drafted it, or (logged) if the helper failed."""
        if self.drafted is None:
            return None
        try:
            return await self.drafted()
        except Exception:
            logger.warning(
                "a helper could not draft the peers; the server builds them", exc_info=True
            )
            return None


class IndexCache(VersionedCache[CatalogEntry]):
    def __init__(self, *, max_entries: int, processes: MatchProcesses | None = None) -> None:
        super().__init__(max_entries=max_entries, what="the catalog index of")
        self.processes = processes
        # the record counts and (once fitted) vocabularies of the indexes being built, and the
        # drafts of peers started meanwhile
        self._sizes: dict[IndexKey, int] = {}
        self._vocabularies: dict[IndexKey, CharNgramVectoriser] = {}
        self._drafts: dict[tuple[IndexKey, PeersKey], Draft] = {}

    async def with_peers(
        self,
        key: IndexKey,
        load: Callable[[], Awaitable[Sequence[tuple[str, str]]]],
        peers_key: PeersKey,
        load_items: Callable[[], Awaitable[Sequence[tuple[str, str]]]],
    ) -> tuple[CatalogEntry, PeerSet | None]:
        """The index for ``key`` and (for a non-empty catalog) the peers for ``peers_key``.

        While the server builds that index, a free helper process drafts the peers
        (:meth:`service.match_processes.MatchProcesses.draft_peers`) with the index's
        n-gram vocabulary, sent as soon as the build has fitted it: the peers then take a
        sixth of their time once the index is built."""
        drafting = (key, peers_key)
        if self._worth_drafting(key, drafting):
            items = await load_items()
            drafted = None
            vocabulary = await self._vocabulary(key)
            if vocabulary is not None and self._worth_drafting(key, drafting):
                assert self.processes is not None
                records = self._sizes.get(key, 0)
                drafted = self.processes.draft_peers(key, peers_key, vocabulary, items, records)
            if drafting not in self._drafts:  # the items are read once either way
                self._drafts[drafting] = Draft(items, drafted)
        try:
            entry = await self.get(key, load)
            if not len(entry.index):
                return entry, None
            return entry, await entry.peers(peers_key, load_items, self._drafts.get(drafting))
        finally:
            self._drafts.pop(drafting, None)

    def forget(self, project: str) -> None:
        super().forget(project)
        if self.processes is not None:
            self.processes.forget(project)

    async def _vocabulary(self, key: IndexKey) -> CharNgramVectoriser | None:
        """The n-gram vectoriser of the index being built for ``key``, once fitted (about
        halfway through the build); None if the build ends without one."""
        while key in self._sizes and key not in self._vocabularies:
            await asyncio.sleep(VOCABULARY_POLL_SECONDS)
        return self._vocabularies.get(key)

    def _worth_drafting(self, key: IndexKey, drafting: tuple[IndexKey, PeersKey]) -> bool:
        """Whether the index for ``key`` is being built, with its records read, early
        enough that drafting its peers meanwhile ends sooner than building them after."""
        return (
            self.processes is not None
            and self.processes.can_draft()
            and drafting not in self._drafts
            and self._sizes.get(key, 0) > 0
            and self.progress(key) <= DRAFT_BEFORE_PROGRESS
        )

    async def get(
        self,
        key: IndexKey,
        load: Callable[[], Awaitable[Sequence[tuple[str, str]]]],
    ) -> CatalogEntry:
        """The index for ``key``, built from ``load()`` at most once at a time."""

        async def build(progress: Progress) -> tuple[CatalogEntry, int]:
            records = await load()
            progress(LOADED_SHARE)
            self._sizes[key] = len(records)

            def fitted(vocabulary: CharNgramVectoriser) -> None:  # in the building thread
                self._vocabularies[key] = vocabulary

            try:
                index = await asyncio.to_thread(
                    CatalogIndex.build,
                    records,
                    progress=scaled(progress, LOADED_SHARE, 1.0),
                    on_vocabulary=fitted,
                )
            finally:
                self._sizes.pop(key, None)
                self._vocabularies.pop(key, None)
            if self.processes is not None:
                await self.processes.add_index(key, index)
            entry = CatalogEntry(index, dict(records), key=key, processes=self.processes)
            return entry, len(records)

        return await self.get_or_build(key, build)

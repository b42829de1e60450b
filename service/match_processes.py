"""Helper processes that match a share of each chunk, so that one chunk uses more than one core.

The library's matching holds Python's global interpreter lock for most of a chunk: two
threads of one process gain about a fifth on two cores, a second process nearly doubles the
rate. Each helper process keeps copies of the catalog indexes and peer sets the server
uses lately:

- a catalog index and a job's peer set are built by the server and sent to the helper once
  (pickled: about 1.6 KB per catalog record, 0.5 KB per item). Building the copy in the
  helper instead, beside the server's own build, doubled the build's CPU, which the uploads
  of the user's path compete for.

Like :class:`service.catalog_index.IndexCache` this is a cache, not truth: entries are keyed
by the same keys (project, version, fields), so an upload means new keys. A helper that
lacks an entry (not built yet, dropped, restarted) is not asked; a helper that fails (an
exception, a crash) has its share matched by the server instead, and a crashed helper is
started again. The matches never depend on where they were made: an item's rows do not
depend on the other items of the call (:func:`service.chunk_rows.match_rows`).

Catalogs of more than ``MATCH_PROCESS_MAX_RECORDS`` records, and peer sets of more items,
are matched by the server alone: a helper's copy would double their memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from matching import CatalogIndex
from matching.peers import PeerDraft, PeerSet
from matching.vectors import CharNgramVectoriser
from service.chunk_rows import MatchRow, ReviewEntry, match_rows
from service.heap import settle_long_lived

logger = logging.getLogger("chunkmatch.processes")

# (project id, catalog or items version, fields)
IndexKey = tuple[str, int, tuple[str, ...]]
PeersKey = IndexKey
# (items, threshold, chunk size) -> what chunk_rows.match_rows gives for them
RemoteMatch = Callable[
    [Sequence[tuple[str, str]], float, int], Awaitable[tuple[list[MatchRow], list[ReviewEntry]]]
]

MIN_SPLIT_ITEMS = 100
"""Chunks of fewer items are matched by the server alone (a helper's round trip costs a
few milliseconds)."""

PREFETCH_SHARE = 0.6
"""Share of the next chunk a helper matches ahead, while the server commits this one and
the driver asks for the next: more than half, since the helper starts earlier."""

MAX_PREFETCHED = 8
"""Shares matched ahead kept at most (one per index and peers), the oldest dropped first."""


@dataclass(frozen=True)
class _Ahead:
    """A share of a chunk submitted to ``helper`` ahead of the chunk's claim."""

    items: tuple[tuple[str, str], ...]
    threshold: float
    chunk_size: int
    future: Future
    helper: _Helper


@dataclass(frozen=True)
class Prefetched:
    """A share of a chunk a helper matched (or is matching) before the chunk was claimed:
    the chunk's last ``len(items)`` items."""

    items: tuple[tuple[str, str], ...]
    result: Callable[[], Awaitable[tuple[list[MatchRow], list[ReviewEntry]]]]


# --- in the helper process -----------------------------------------------------------

_indexes: OrderedDict[IndexKey, CatalogIndex] = OrderedDict()
_peer_sets: OrderedDict[tuple[IndexKey, PeersKey], PeerSet] = OrderedDict()


PARENT_CHECK_SECONDS = 1.0
"""How often a helper checks that its server still runs."""


def _init_helper(parent: int) -> None:
    """Set up a new helper process: Ctrl+C in a terminal interrupts the whole process group,
    but the server stops its helpers itself; and a helper whose server is gone (killed, say)
    exits within :data:`PARENT_CHECK_SECONDS` instead of lingering."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="watch-server", daemon=True).start()


def _started() -> int:
    """Run first in a new helper, so that its imports are done before it is needed."""
    return os.getpid()


def _add_index(key: IndexKey, index: CatalogIndex, keep: int) -> None:
    _keep(_indexes, key, index, keep)
    for old in [k for k in _peer_sets if k[0] not in _indexes]:
        del _peer_sets[old]
    settle_long_lived()


def _add_peers(key: IndexKey, peers_key: PeersKey, peers: PeerSet, keep: int) -> None:
    if key in _indexes:
        _keep(_peer_sets, (key, peers_key), peers, keep)
        settle_long_lived()


def _match(
    key: IndexKey,
    peers_key: PeersKey,
    items: Sequence[tuple[str, str]],
    threshold: float,
    chunk_size: int,
) -> tuple[list[MatchRow], list[ReviewEntry]]:
    index = _indexes.get(key)
    peers = _peer_sets.get((key, peers_key))
    if index is None or peers is None:
        raise LookupError(f"this helper holds no index or peers for {key!r}")
    return match_rows(index, items, threshold, peers, chunk_size)


_drafted: dict[tuple[IndexKey, PeersKey], PeerSet] = {}


def _draft_peers(
    key: IndexKey,
    peers_key: PeersKey,
    vocabulary: CharNgramVectoriser,
    items: Sequence[tuple[str, str]],
) -> PeerDraft:
    draft = CatalogIndex.draft_peers(vocabulary, items)
    _drafted.clear()  # the latest only: the server sends its prior next
    _drafted[(key, peers_key)] = draft.peers
    return draft


def _add_index_pickled(key: IndexKey, pickled: bytes, keep: int) -> None:
    _add_index(key, pickle.loads(pickled), keep)


def _add_peers_pickled(key: IndexKey, peers_key: PeersKey, pickled: bytes, keep: int) -> None:
    _add_peers(key, peers_key, pickle.loads(pickled), keep)


def _add_drafted_peers(key: IndexKey, peers_key: PeersKey, prior: float, keep: int) -> None:
    """The peers this helper drafted, with the job's prior the server added to them."""
    drafted = _drafted.pop((key, peers_key), None)
    if drafted is None:
        raise LookupError(f"this helper drafted no peers for {peers_key!r}")
    _add_peers(key, peers_key, dataclasses.replace(drafted, prior_shift=prior), keep)


def _forget(project: str) -> None:
    for old in [k for k in _indexes if k[0] == project]:
        del _indexes[old]
    for old in [k for k in _peer_sets if k[0][0] == project]:
        del _peer_sets[old]


def _keep(entries: OrderedDict, key: tuple, value: object, keep: int) -> None:
    """Add ``value``; a newer version of the same project (and fields) drops the older
    ones, and the oldest entries go beyond ``keep``."""
    entries[key] = value
    for old in [k for k in entries if _older(k, key)]:
        del entries[old]
    while len(entries) > keep:
        entries.popitem(last=False)


def _older(a: tuple, b: tuple) -> bool:
    """Whether key ``a`` is an older version of key ``b``'s project: plain keys, or
    (index key, peers key) pairs."""
    if isinstance(a[0], tuple):
        return a[0] == b[0] and _older(a[1], b[1]) or _older(a[0], b[0])
    return a[0] == b[0] and a[1] < b[1]


# --- in the server -------------------------------------------------------------------


class _Helper:
    """One helper process and what the server has asked it to hold."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_helper,
            initargs=(os.getpid(),),
        )
        self.started = self.executor.submit(_started)
        self.indexes: OrderedDict[IndexKey, Future] = OrderedDict()
        self.peer_sets: OrderedDict[tuple[IndexKey, PeersKey], Future] = OrderedDict()
        # peers it drafts while the server builds their index: no share of a chunk is
        # given to it meanwhile (it would wait seconds behind the draft)
        self.drafting: Future | None = None
        self.drafted: tuple[IndexKey, PeersKey] | None = None

    @property
    def busy(self) -> bool:
        return self.drafting is not None and not self.drafting.done()

    def drop_orphan_peers(self) -> None:
        for old in [k for k in self.peer_sets if k[0] not in self.indexes]:
            del self.peer_sets[old]

    def holds(self, key: IndexKey, peers_key: PeersKey) -> bool:
        return _done(self.indexes.get(key)) and _done(self.peer_sets.get((key, peers_key)))

    def will_hold(self, key: IndexKey, peers_key: PeersKey) -> bool:
        """Holds them, or was sent them and has not failed: work submitted now runs after
        they are loaded (one worker, in order)."""
        return all(
            future is not None and not (future.done() and not _done(future))
            for future in (self.indexes.get(key), self.peer_sets.get((key, peers_key)))
        )

    def stop(self) -> None:
        processes = list(getattr(self.executor, "_processes", {}).values())
        # shutdown(wait=False) forgets the executor's thread; it is joined below
        manager = getattr(self.executor, "_executor_manager_thread", None)
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # work under way is not waited for
            if process.is_alive():
                process.kill()
            process.join(5.0)
        # the executor's thread then closes its queues, which free their semaphores once
        # collected (see MatchProcesses.close)
        self.executor.shutdown(wait=True)
        if manager is not None:
            manager.join(5.0)


async def _pickled(value: object) -> bytes | None:
    """``value`` pickled in a worker thread; None (logged) if it cannot be: the helpers
    are a cache, and the server matches what they cannot."""
    try:
        return await asyncio.to_thread(pickle.dumps, value, pickle.HIGHEST_PROTOCOL)
    except Exception:
        logger.warning("could not copy a %s to the helpers", type(value).__name__, exc_info=True)
        return None


def _done(future: Future | None) -> bool:
    return (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    )


class MatchProcesses:
    """``count`` helper processes, each matching an equal share of every chunk it can."""

    def __init__(self, count: int, *, max_records: int, keep_indexes: int, keep_peers: int):
        self.count = count
        self.max_records = max_records
        self.keep_indexes = keep_indexes
        self.keep_peers = keep_peers
        self._helpers: list[_Helper] = []
        # what a helper matches ahead of a chunk, by (index key, peers key): one at a time
        self._prefetched: dict[tuple[IndexKey, PeersKey], _Ahead] = {}

    def start(self) -> None:
        """Start the helpers (each imports the library meanwhile, about a second)."""
        self._helpers = [_Helper(n) for n in range(self.count)]
        if self.count:
            logger.info("started %d matching helper process(es)", self.count)

    def close(self) -> None:
        """Stop the helpers. Each executor's queues hold five named semaphores, unlinked
        when the queues are freed or at a normal exit; the server exits by the SIGTERM that
        uvicorn re-raises, so a queue still held by its executor's thread then made
        multiprocessing's resource tracker warn of "leaked semaphore objects" on stderr
        (a line of the log that is not JSON): :meth:`_Helper.stop` joins that thread."""
        for helper in self._helpers:
            helper.stop()
        self._helpers = []
        while self._prefetched:
            self._prefetched.popitem()[1].future.cancel()

    def helping(self, records: int) -> int:
        """How many helpers match a share of the chunks of a catalog (or job) this size."""
        return self.count if 0 < records <= self.max_records else 0

    async def add_index(self, key: IndexKey, index: CatalogIndex) -> None:
        """Send every helper a copy of the index for ``key``, pickled here in a worker
        thread (about 0.4 s for 100,000 records; the helper loads it in 0.6 s while the
        server goes on). Pickled before the job is ready, not by the executor's feeder
        thread as the first chunks run: the pickling holds the interpreter lock, and a
        chunk matched meanwhile took twice as long (736 against 343 ms in-process)."""
        if not self.helping(len(index)) or not self._helpers:
            return
        pickled = await _pickled(index)
        if pickled is None:
            return
        for helper in list(self._helpers):
            future = self._submit(helper, _add_index_pickled, key, pickled, self.keep_indexes)
            if future is not None:
                _keep(helper.indexes, key, future, self.keep_indexes)
                helper.drop_orphan_peers()

    async def add_peers(self, key: IndexKey, peers_key: PeersKey, peers: PeerSet) -> None:
        """Send ``peers`` to every helper building or holding the index for ``key``: a
        helper that drafted them (:meth:`draft_peers`) is sent only the job's prior, the
        others a copy pickled here (as in :meth:`add_index`)."""
        if not self.helping(len(peers)):
            return
        pickled: bytes | None = None
        for helper in [h for h in self._helpers if key in h.indexes]:
            if helper.drafted == (key, peers_key) and _done(helper.drafting):
                helper.drafted = None
                args: tuple = (_add_drafted_peers, key, peers_key, peers.prior_shift)
            else:
                pickled = pickled or await _pickled(peers)
                if pickled is None:
                    return
                args = (_add_peers_pickled, key, peers_key, pickled)
            future = self._submit(helper, *args, self.keep_peers)
            if future is not None:
                _keep(helper.peer_sets, (key, peers_key), future, self.keep_peers)

    def forget(self, project: str) -> None:
        """Drop every entry of ``project`` (its records were deleted)."""
        for helper in self._helpers:
            for old in [k for k in helper.indexes if k[0] == project]:
                del helper.indexes[old]
            for old in [k for k in helper.peer_sets if k[0][0] == project]:
                del helper.peer_sets[old]
            with contextlib.suppress(BrokenProcessPool):  # a new one holds nothing anyway
                helper.executor.submit(_forget, project)

    def matchers(self, key: IndexKey, peers_key: PeersKey) -> list[RemoteMatch]:
        """One function per helper that holds the index and peers for these keys: it
        matches a share of a chunk there."""
        return [
            _matcher(self, helper, key, peers_key)
            for helper in self._helpers
            if helper.holds(key, peers_key) and not helper.busy
        ]

    def holds(self, key: IndexKey, peers_key: PeersKey) -> bool:
        """Whether a free helper has loaded the index and peers for these keys."""
        return any(h.holds(key, peers_key) and not h.busy for h in self._helpers)

    async def loaded(self, key: IndexKey, peers_key: PeersKey, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the helpers sent the index and peers for these
        keys to load them; whether one holds them."""
        futures = [
            asyncio.wrap_future(future)
            for helper in self._helpers
            if helper.will_hold(key, peers_key)
            for future in (helper.indexes[key], helper.peer_sets[(key, peers_key)])
        ]
        if futures:
            await asyncio.wait(futures, timeout=timeout)
        return self.holds(key, peers_key)

    def will_hold(self, key: IndexKey, peers_key: PeersKey) -> bool:
        """Whether a helper holds, or is loading, the index and peers for these keys."""
        return any(h.will_hold(key, peers_key) for h in self._helpers)

    def prefetch(
        self,
        key: IndexKey,
        peers_key: PeersKey,
        items: Sequence[tuple[str, str]],
        threshold: float,
        chunk_size: int,
    ) -> None:
        """Have a helper match ``items``, the last share of a chunk of ``chunk_size`` items
        that is likely to be claimed next, so that the chunk need not wait for it
        (:meth:`take_prefetched`)."""
        holders = [h for h in self._helpers if h.will_hold(key, peers_key) and not h.busy]
        if not holders:
            return
        helper = holders[0]
        future = self._submit(helper, _match, key, peers_key, list(items), threshold, chunk_size)
        if future is None:
            return
        old = self._prefetched.pop((key, peers_key), None)
        if old is not None:
            old.future.cancel()
        self._prefetched[(key, peers_key)] = _Ahead(
            tuple(items), threshold, chunk_size, future, helper
        )
        while len(self._prefetched) > MAX_PREFETCHED:  # jobs that ended, or went elsewhere
            oldest = next(iter(self._prefetched))
            self._prefetched.pop(oldest).future.cancel()

    def take_prefetched(
        self,
        key: IndexKey,
        peers_key: PeersKey,
        items: Sequence[tuple[str, str]],
        threshold: float,
    ) -> Prefetched | None:
        """The share of this chunk a helper matched ahead, if it is this chunk's: the same
        last items (ids and texts), threshold and chunk size; else None."""
        ahead = self._prefetched.pop((key, peers_key), None)
        if ahead is None:
            return None
        size, share = ahead.chunk_size, ahead.items
        if (
            ahead.threshold != threshold
            or size != len(items)
            or tuple(items[size - len(share) :]) != share
        ):
            ahead.future.cancel()
            return None
        return Prefetched(share, functools.partial(self._result, ahead.helper, ahead.future))

    def draft_peers(
        self,
        key: IndexKey,
        peers_key: PeersKey,
        vocabulary: CharNgramVectoriser,
        items: Sequence[tuple[str, str]],
        records: int,
    ) -> Callable[[], Awaitable[PeerDraft]] | None:
        """Have a helper that has nothing else to do draft the peers of ``items`` with the
        n-gram ``vocabulary`` of an index of ``records`` records that the server is building
        (:meth:`matching.CatalogIndex.draft_peers`): the draft ends before the build. Returns
        what awaits the draft (raising if the helper fails), or None when no helper is free
        or the sizes are beyond :meth:`helping`."""
        helper = self._free_helper()
        if helper is None or not (self.helping(records) and self.helping(len(items))):
            return None
        future = self._submit(helper, _draft_peers, key, peers_key, vocabulary, list(items))
        if future is None:
            return None
        helper.drafting, helper.drafted = future, (key, peers_key)
        return functools.partial(self._result, helper, future)

    def can_draft(self) -> bool:
        """Whether a helper is free to draft peers now (:meth:`draft_peers`)."""
        return self._free_helper() is not None

    def _free_helper(self) -> _Helper | None:
        ahead = {a.helper for a in self._prefetched.values() if not a.future.done()}
        return next((h for h in self._helpers if not h.busy and h not in ahead), None)

    def pids(self, timeout: float = 60.0) -> list[int]:
        """The helpers' process ids, once they have started."""
        return [helper.started.result(timeout) for helper in self._helpers]

    def _submit(self, helper: _Helper, fn: Callable, *args: object) -> Future | None:
        """``fn(*args)`` submitted to ``helper``; None (and the helper started again) if
        it has died."""
        try:
            return helper.executor.submit(fn, *args)
        except BrokenProcessPool:
            self._restart(helper)
            return None

    async def _result(self, helper: _Helper, future: Future) -> Any:
        """What ``future`` of ``helper`` gives; a helper found dead is started again."""
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._restart(helper)
            raise

    def _restart(self, helper: _Helper) -> None:
        if helper in self._helpers:
            logger.warning("matching helper %d stopped; starting it again", helper.number)
            helper.stop()
            self._helpers[self._helpers.index(helper)] = _Helper(helper.number)


def _matcher(
    processes: MatchProcesses, helper: _Helper, key: IndexKey, peers_key: PeersKey
) -> RemoteMatch:
    async def match(
        items: Sequence[tuple[str, str]], threshold: float, chunk_size: int
    ) -> tuple[list[MatchRow], list[ReviewEntry]]:
        future = processes._submit(
            helper, _match, key, peers_key, list(items), threshold, chunk_size
        )
        if future is None:
            raise BrokenProcessPool(f"matching helper {helper.number} had stopped")
        try:
            return await processes._result(helper, future)
        except LookupError:  # it dropped them: not asked again until sent again
            helper.indexes.pop(key, None)
            helper.drop_orphan_peers()
            raise

    return match

"""One PostgreSQL ``LISTEN`` connection per process, fanned out in memory.

Every change of a job's row sends ``NOTIFY chunkmatch_job_events, '<id>:<version>'`` in its
own transaction (a trigger, migration 009), whichever process or statement made it; a
token's revocation sends ``chunkmatch_tokens``. :class:`Notifications` listens on one
connection and keeps, for the jobs this process is asked about, the latest snapshot:

- event-stream subscribers get each new snapshot (one database read per change, however
  many subscribers; a slow subscriber only ever holds the latest one);
- ``GET /api/jobs/{id}`` is answered from a snapshot while it is *fresh*: read after the
  listener was listening, and no NOTIFY or write of this process about the job since.
  Nothing is cached by hope: while the listener is down, nothing is fresh and every read
  goes to the database, until it listens again;
- tokens' owners are remembered for a few seconds, dropped at once on revocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from service.exceptions import DatabaseUnavailable
from service.models import FINISHED_STATUSES, Job
from service.store import JOBS_CHANNEL, WEBHOOKS_CHANNEL, Store
from service.tokens import Principal, token_hash

logger = logging.getLogger("chunkmatch.notify")

JOB_EVENTS_CHANNEL = "chunkmatch_job_events"
TOKENS_CHANNEL = "chunkmatch_tokens"
MAX_SNAPSHOTS = 10_000  # jobs kept in memory per process (least recently asked dropped)
MAX_TOKENS = 10_000
RELISTEN_SECONDS = 1.0  # wait before opening the listener again after losing it
REFRESH_BATCH = 500  # jobs read in one statement when many changed at once


@dataclass
class JobSnapshot:
    """A job as committed at ``job.version``, with its owner and its JSON rendered once."""

    job: Job
    owner: str
    _json: bytes | None = field(default=None, repr=False)

    @property
    def version(self) -> int:
        return self.job.version

    @property
    def finished(self) -> bool:
        return self.job.status in FINISHED_STATUSES

    def visible_to(self, principal: Principal) -> bool:
        return principal.scope is None or principal.scope == self.owner

    def job_json(self) -> bytes:
        """The job as ``GET /api/jobs/{id}`` shows it (rendered once per version)."""
        if self._json is None:
            self._json = json.dumps(
                self.job.to_json(), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode()
        return self._json


class Subscription:
    """One event-stream listener of one job: holds only the latest snapshot not yet taken,
    so a slow reader never makes the others wait or memory grow."""

    def __init__(self, job_id: str, token_hash: str | None = None) -> None:
        self.job_id = job_id
        self.token_hash = token_hash  # the token it was opened with: revoked, it closes
        self.closed = False  # the job is gone, its token revoked, or the process stopping
        self._latest: JobSnapshot | None = None
        self._changed = asyncio.Event()

    def offer(self, snapshot: JobSnapshot) -> None:
        if self._latest is None or snapshot.version > self._latest.version:
            self._latest = snapshot
            self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    async def next(self, timeout: float) -> JobSnapshot | None:
        """The newest snapshot offered since the last call; ``None`` after ``timeout``
        seconds without one, or once closed."""
        if self._latest is None and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        self._changed.clear()
        snapshot, self._latest = self._latest, None
        return snapshot


class _Read:
    """A database read in flight for a job: spoiled if the job changes meanwhile, in which
    case what it read is served once but not kept as fresh."""

    __slots__ = ("spoiled",)

    def __init__(self) -> None:
        self.spoiled = False


@dataclass
class _Token:
    principal: Principal
    expires: float
    generation: int


class Notifications:
    def __init__(self, store: Store, *, token_cache_seconds: float = 10.0) -> None:
        self.store = store
        self.token_cache_seconds = token_cache_seconds
        self.connected = False
        self.generation = 0  # increased each time the listener (re)starts listening
        self._snapshots: OrderedDict[str, JobSnapshot] = OrderedDict()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._streams_by_token: dict[str | None, set[Subscription]] = {}
        self._reads: dict[str, list[_Read]] = {}
        self._any_write = 0  # bumped by writes that may touch any job (deletions)
        self._tokens: dict[str, _Token] = {}
        self._token_changes = 0
        self._runnable: list[Callable[[str], None]] = []
        self._webhook_queued: list[Callable[[str], None]] = []
        self._to_refresh: set[str] = set()
        self._refresh_wanted = asyncio.Event()
        self._listening = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        self.store.on_job_write = self.job_written
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="notify-listen"),
            asyncio.create_task(self._refresh_loop(), name="notify-refresh"),
        ]

    async def wait_listening(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout)
        return self.connected

    def close_streams(self) -> None:
        """End every event stream (the process is stopping)."""
        self._stopping = True
        for subs in self._subscribers.values():
            for sub in subs:
                sub.close()

    async def stop(self) -> None:
        self.close_streams()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._lost()
        if self.store.on_job_write == self.job_written:
            self.store.on_job_write = None

    def on_runnable(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(job_id)`` when a job becomes runnable, and (with ``""``) after
        the listener reconnects (it may have missed some): the built-in worker's wake-up."""
        self._runnable.append(callback)

    def on_webhook_queued(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(job_id)`` when a job's change queued webhook deliveries, and
        (with ``""``) after the listener reconnects: the webhook dispatcher's wake-up."""
        self._webhook_queued.append(callback)

    # -- the listener ----------------------------------------------------------------

    async def _listen_loop(self) -> None:
        while not self._stopping:
            try:
                await self._listen_once()
            except DatabaseUnavailable:
                pass
            except Exception:  # never let the listener die: memory would stay stale
                logger.exception("the LISTEN connection failed")
            self._lost()
            await asyncio.sleep(RELISTEN_SECONDS)

    async def _listen_once(self) -> None:
        lost = asyncio.Event()
        conn = await self.store.listen(
            {
                JOB_EVENTS_CHANNEL: self._job_event,
                TOKENS_CHANNEL: self._token_event,
                JOBS_CHANNEL: self._job_runnable,
                WEBHOOKS_CHANNEL: self._webhook_event,
            },
            on_lost=lost.set,
        )
        try:
            self.generation += 1
            self.connected = True
            self._listening.set()
            # what changed while nobody listened: the streams' jobs are read again
            self._to_refresh.update(self._subscribers)
            self._refresh_wanted.set()
            self._job_runnable("")
            self._webhook_event("")
            while not self.store.listener_closed(conn) and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 1.0)
            logger.warning("lost the LISTEN connection; reading jobs from the database")
        finally:
            self._lost()
            await self.store.release_listener(conn)

    def _lost(self) -> None:
        """The listener is down: nothing in memory can be trusted any more."""
        self.connected = False
        self._listening.clear()
        self._snapshots.clear()
        self._tokens.clear()
        for reads in self._reads.values():
            for read in reads:
                read.spoiled = True

    def _job_event(self, payload: str) -> None:
        job_id, _, version = payload.partition(":")
        if version == "deleted":
            self._forget(job_id)
            for sub in self._subscribers.get(job_id, ()):
                sub.close()
            return
        try:
            number = int(version)
        except ValueError:
            return
        cached = self._snapshots.get(job_id)
        if cached is not None and cached.version >= number:
            return  # this process already holds that state (it made the change)
        self._forget(job_id)
        if job_id in self._subscribers:
            self._to_refresh.add(job_id)
            self._refresh_wanted.set()

    def _forget(self, job_id: str) -> None:
        self._snapshots.pop(job_id, None)
        for read in self._reads.get(job_id, ()):
            read.spoiled = True

    def _token_event(self, hashed: str) -> None:
        self._token_changes += 1
        self._tokens.pop(hashed, None)
        for sub in self._streams_by_token.pop(hashed, set()):
            sub.close()  # a revoked token's streams end too (a new one would be refused)

    def _job_runnable(self, job_id: str) -> None:
        for callback in self._runnable:
            callback(job_id)

    def _webhook_event(self, job_id: str) -> None:
        for callback in self._webhook_queued:
            callback(job_id)

    def job_written(self, job_id: str | None) -> None:
        """This process is changing (or has changed) ``job_id`` (``None``: any job)."""
        if job_id is not None:
            self._forget(job_id)
            return
        self._any_write += 1
        self._snapshots.clear()
        for reads in self._reads.values():
            for read in reads:
                read.spoiled = True

    # -- jobs ------------------------------------------------------------------------

    def fresh(self, job_id: str) -> JobSnapshot | None:
        """The job's snapshot if it is known to be the committed state; else ``None``."""
        if not self.connected:
            return None
        snapshot = self._snapshots.get(job_id)
        if snapshot is not None:
            self._snapshots.move_to_end(job_id)
        return snapshot

    async def job(self, job_id: str) -> JobSnapshot | None:
        """The job as committed now: from memory when fresh, else from the database (kept
        for next time when nothing changed it meanwhile)."""
        snapshot = self.fresh(job_id)
        if snapshot is not None:
            return snapshot
        found = await self._read([job_id])
        return found.get(job_id)

    async def _read(self, job_ids: list[str]) -> dict[str, JobSnapshot]:
        generation, any_write = self.generation, self._any_write
        reads = {}
        for job_id in job_ids:
            reads[job_id] = read = _Read()
            self._reads.setdefault(job_id, []).append(read)
        try:
            rows = await self.store.job_snapshots(job_ids)
        finally:
            for job_id, read in reads.items():
                pending = self._reads.get(job_id, [])
                with contextlib.suppress(ValueError):
                    pending.remove(read)
                if not pending:
                    self._reads.pop(job_id, None)
        found = {j: JobSnapshot(job, owner) for j, (job, owner) in rows.items()}
        keep = self.connected and generation == self.generation and any_write == self._any_write
        for job_id, snapshot in found.items():
            if keep and not reads[job_id].spoiled:
                held = self._snapshots.get(job_id)
                if held is None or held.version <= snapshot.version:
                    self._snapshots[job_id] = snapshot
                    self._snapshots.move_to_end(job_id)
            for sub in self._subscribers.get(job_id, ()):
                sub.offer(snapshot)
        while len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return found

    def subscribe(self, job_id: str, *, token_hash: str | None = None) -> Subscription:
        sub = Subscription(job_id, token_hash)
        if self._stopping:
            sub.close()
        self._subscribers.setdefault(job_id, set()).add(sub)
        if token_hash is not None:
            self._streams_by_token.setdefault(token_hash, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for index, key in (
            (self._subscribers, sub.job_id),
            (self._streams_by_token, sub.token_hash),
        ):
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]

    async def _refresh_loop(self) -> None:
        """Read the jobs that changed (many changes of one job: one read), and hand the
        new snapshots to their subscribers."""
        while True:
            await self._refresh_wanted.wait()
            self._refresh_wanted.clear()
            while self._to_refresh:
                batch = [
                    self._to_refresh.pop() for _ in range(min(REFRESH_BATCH, len(self._to_refresh)))
                ]
                try:
                    await self._read(batch)
                except DatabaseUnavailable:
                    self._to_refresh.update(batch)
                    await asyncio.sleep(RELISTEN_SECONDS)
                except Exception:
                    logger.exception("could not read changed jobs")

    # -- tokens ----------------------------------------------------------------------

    async def principal(self, token: str) -> Principal | None:
        """Who ``token`` belongs to (``None``: unknown or revoked), remembered briefly."""
        hashed = token_hash(token)
        now = time.monotonic()
        if self.connected and self.token_cache_seconds > 0:
            held = self._tokens.get(hashed)
            if held is not None and held.generation == self.generation and held.expires > now:
                return held.principal
        generation, changes = self.generation, self._token_changes
        who = await self.store.principal_for_hash(hashed)
        if (
            who is not None
            and self.connected
            and self.token_cache_seconds > 0
            and generation == self.generation
            and changes == self._token_changes
        ):
            if len(self._tokens) >= MAX_TOKENS:
                self._tokens.clear()
            self._tokens[hashed] = _Token(who, now + self.token_cache_seconds, generation)
        return who

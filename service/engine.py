"""The chunk engine: claim a chunk → run the job's stage on it → commit matches and progress.

Every step's truth is in PostgreSQL: a driver holds a chunk only through its lease (renewed
while the chunk runs), and its results count only if the compare-and-set commit finds the
lease still its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import socket
import statistics
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matching.peers import PeerSet
from matching.results import MatchResult
from service import eta, metrics
from service.catalog_index import CatalogEntry, IndexCache, IndexKey, PeersKey
from service.exceptions import DatabaseUnavailable
from service.match_processes import (
    MIN_SPLIT_ITEMS,
    PREFETCH_SHARE,
    RemoteMatch,
)
from service.models import ChunkClaim, Job, StageOutcome
from service.providers import Providers
from service.stage_runners import RUNNERS, StageContext, prior_items_per_second
from service.stages import default_fields
from service.store import Store

logger = logging.getLogger("chunkmatch.engine")

_HOST = socket.gethostname()

PREWARM_QUIET_SECONDS = 0.3
"""How long an upload's background index build waits for a following upload first. Short:
on the user's path the catalog's index is what a job created after the items upload waits
for (1.0 s cost the 100k job's preparation about as much)."""

HELPER_LOAD_WAIT_SECONDS = 2.0
"""Longest a job's preparation waits for its helpers to load an index sent just now."""

PREPARATION_WAIT_SECONDS = 2.0
"""How long a ``/process`` call on a job still being prepared waits for the preparation
before it answers without a chunk (so that a client calling back to back does not spin)."""

PREPARATION_INLINE_SECONDS = 0.5
"""A preparation that the call which started it saw finish within this long (a small
catalog's) is followed by the job's chunk in the same call, instead of an answer without a
chunk."""

PREPARATION_JOIN_INLINE_SECONDS = 0.1
"""The same for a call that joined a preparation an earlier call started (a large
catalog's, whose first call answered without a chunk). Kept well below a chunk's time: at
0.5 s, the call that saw a 100k catalog's build end ran the first chunk after up to half a
second of waiting, 1.0-1.1 s against a median chunk of 0.35-0.5 s."""

PREPARATION_REPORT_SECONDS = 0.5
"""How often a preparation under way writes its progress (and ETA) to the job's row."""

PREPARATION_RECORDS_PER_SECOND = {"catalog_index": 23_000.0, "peers": 32_000.0}
"""Known build rates per record (catalog records, items) for a preparation's ETA before
the build has shown its own pace (2 shared cores, 20k and 100k records, 100k items)."""

PRIOR_RATE_JOBS = 5
"""Recent completed jobs whose median rate of a stage is its prior rate (service/eta.py)."""

PRIOR_RATE_TTL_SECONDS = 300.0
"""How long a process keeps a stage's prior rate before asking PostgreSQL again."""


@dataclass(frozen=True)
class ChunkOutcome:
    job: Job
    message: str
    processed: int = 0
    new_matches: int = 0
    busy: bool = False
    # no chunk ran: the job's index or peers are still being built (see Engine.start_preparation)
    preparing: bool = False


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def retry_delay(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter for the ``attempt``-th consecutive failure (1-based)."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class Engine:
    def __init__(
        self,
        store: Store,
        index_cache: IndexCache,
        *,
        lease_seconds: float,
        retry_base_seconds: float = 2.0,
        retry_max_seconds: float = 300.0,
        providers: Providers | None = None,
        chunk_time_budget_seconds: float = 25.0,
    ) -> None:
        self.store = store
        self.index_cache = index_cache
        self.lease_seconds = lease_seconds
        self.providers = providers
        self.chunk_time_budget_seconds = chunk_time_budget_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        # job id -> the task building what the job needs (True when it is ready)
        self._preparations: dict[str, asyncio.Task[bool]] = {}
        # (project id, stage) -> (prior items/s, when fetched: monotonic seconds)
        self._prior_rates: dict[tuple[str, str], tuple[dict[str, float], float]] = {}
        # helpers' matching of the next chunks' shares, being asked for (see _prefetch)
        self._prefetches: set[asyncio.Task[None]] = set()

    async def process_next_chunk(
        self, job_id: uuid.UUID, *, preparation_wait: float = PREPARATION_WAIT_SECONDS
    ) -> ChunkOutcome | None:
        """Advance ``job_id`` by exactly one chunk; ``None`` if there is no such job.

        While the catalog index or peers the job needs are not built in this process, no
        chunk is claimed: the call starts (or joins) the job's preparation, waits for it up
        to ``preparation_wait`` seconds and answers with ``preparing`` set, so that no
        chunk's time includes the build."""
        job = await self.store.get_job(job_id)
        if job is None:
            return None
        if job.is_active and self.preparation_state(job) is not None:
            preparing = await self._await_preparation(job, preparation_wait)
            if preparing is not None:
                return preparing
        started = time.perf_counter()
        outcome = await self.store.claim_chunk(
            job_id, owner=_owner(), lease_seconds=self.lease_seconds
        )
        if outcome is None:
            return None
        job, chunk = outcome.job, outcome.chunk
        if chunk is None:
            return ChunkOutcome(job, _idle_message(job, busy=outcome.busy), busy=outcome.busy)
        claimed = time.perf_counter()
        stage = job.stages[chunk.stage - 1]
        renewer = asyncio.create_task(self._keep_lease(chunk))
        try:
            outcome, prepare_seconds = await self._run_stage(job, chunk)
            renewer.cancel()  # the commit below is a compare-and-set on the lease
            ran = time.perf_counter()
            committed = await self.store.commit_chunk(
                chunk,
                job.project_id,
                outcome,
                later_stages_eta=_later_stages_eta(job, chunk.stage),
                prepare_seconds=prepare_seconds,
                **await self._prior(job, stage),
            )
        except (asyncio.CancelledError, DatabaseUnavailable):
            # not the job's fault: give the chunk back for the next driver
            metrics.chunk_ended(stage, "released", seconds=time.perf_counter() - started)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_chunk(chunk))
            raise
        except Exception as exc:
            # a bug, bad data or a provider gave up, or the database refused the commit
            # (which then wrote nothing; a 1M job's last commit once failed so, every retry
            # alike): retry the job later, fail it after its attempts
            logger.exception(
                "chunk %s of job %s failed", chunk.seq, job.id, extra=_chunk_extra(job, chunk)
            )
            failed = await self._chunk_failed(job, chunk, exc)
            metrics.chunk_ended(stage, "failed", seconds=time.perf_counter() - started)
            return failed
        finally:
            renewer.cancel()
        if committed is None:
            current = await self.store.get_job(job_id)
            cancelled = current is not None and current.status == "cancelled"
            seconds = time.perf_counter() - started
            metrics.chunk_ended(stage, "cancelled" if cancelled else "lost", seconds=seconds)
            if current is not None and cancelled:
                return ChunkOutcome(
                    current, f"Job was cancelled; chunk {chunk.seq} was not committed"
                )
            return ChunkOutcome(
                current or job,
                f"Chunk {chunk.seq} lost its lease before it was committed; "
                "its items will be processed again",
            )
        found = len(outcome.matches)
        done = time.perf_counter()
        metrics.chunk_committed(
            stage, items=chunk.size, methods=(m[3] for m in outcome.matches), seconds=done - started
        )
        logger.info(
            "job %s stage %d chunk %d: %d items, %d matches, %d failed, %d requeued; "
            "progress %d/%d; claim %.0f ms, stage %.0f ms, commit %.0f ms",
            job.id,
            chunk.stage,
            chunk.seq,
            chunk.size,
            found,
            len(outcome.failed),
            len(outcome.requeued),
            committed.processed_items,
            committed.total_items,
            1000 * (claimed - started),
            1000 * (ran - claimed),
            1000 * (done - ran),
            extra=_chunk_extra(
                job,
                chunk,
                duration_ms=round(1000 * (done - started), 1),
                items=chunk.size,
                matches=found,
            ),
        )
        message = f"Processed {chunk.size} items, {found} new matches"
        if outcome.failed:
            message += f", {len(outcome.failed)} failed"
        if outcome.requeued:
            message += f", {len(outcome.requeued)} put back in the queue (not decided in time)"
        if outcome.waiting_reason:
            message += f"; waiting: {outcome.waiting_reason}"
        if committed.current_stage != job.current_stage and committed.is_active:
            message += f"; next stage: {committed.current_stage_name}"
        if committed.status == "completed":
            message += "; job completed"
        return ChunkOutcome(committed, message, chunk.size, found)

    async def _chunk_failed(self, job: Job, chunk: ChunkClaim, exc: Exception) -> ChunkOutcome:
        await self.store.release_chunk(chunk)
        error = f"{type(exc).__name__}: {exc}"
        delay = retry_delay(
            job.attempts + 1, base=self.retry_base_seconds, cap=self.retry_max_seconds
        )
        updated = await self.store.record_chunk_error(job.id, error, retry_in_seconds=delay)
        if updated is None:
            updated = await self.store.get_job(uuid.UUID(job.id)) or job
        if updated.status == "failed":
            message = (
                f"Chunk {chunk.seq} failed ({error}); job failed after {updated.attempts} attempts"
            )
        else:
            message = (
                f"Chunk {chunk.seq} failed ({error}); attempt {updated.attempts} of "
                f"{updated.max_attempts}, retrying in {delay:.1f}s"
            )
        return ChunkOutcome(updated, message)

    def preparation_state(self, job: Job) -> dict[str, object] | None:
        """What this process has still to build before the job's next chunk, as the job's
        ``preparation`` (``{"step", "progress"}``); None when it is ready."""
        catalog_key, peers_key = self._index_keys(job)
        catalog = self.index_cache.peek(catalog_key)
        if catalog is None:
            return _preparation("catalog_index", self.index_cache.progress(catalog_key))
        if peers_key is None or not len(catalog.index) or catalog.peek_peers(peers_key) is not None:
            return None
        return _preparation("peers", catalog.peers_progress(peers_key))

    def start_preparation(self, job: Job) -> Job:
        """Start building, in the background, the index and peers the job needs unless
        they are ready; the job with its ``preparation``."""
        state = self.preparation_state(job) if job.is_active else None
        if state is not None:
            self._preparation_task(job)
        return dataclasses.replace(job, preparation=state)

    def _preparation_task(self, job: Job) -> asyncio.Task[bool]:
        task = self._preparations.get(job.id)
        if task is None:
            task = asyncio.create_task(self._prepare(job), name=f"prepare-{job.id}")
            self._preparations[job.id] = task
            task.add_done_callback(lambda _: self._preparations.pop(job.id, None))
        return task

    async def _prepare(self, job: Job) -> bool:
        """Build the job's index (and peers), writing the progress to its row meanwhile;
        True once ready, False if the build failed (its next chunk tries and reports)."""
        reporter = asyncio.create_task(self._report_preparation(job))
        try:
            catalog, peers = await self._job_index(job, with_peers=_stage(job) == "enhanced")
        except Exception:
            logger.warning("could not prepare job %s", job.id, exc_info=True)
            return False
        else:
            if peers is not None:
                await self._prefetch_first(job, catalog)
            return True
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.store.set_job_preparation(job.id, None)

    async def _report_preparation(self, job: Job) -> None:
        """Write the preparation's progress and ETA to the job's row until cancelled (the
        first write at once, the ETA from the second on: a build done within the first half
        second, a small catalog's, writes nothing more)."""
        first, catalog_records = True, 0
        # the step under way, its progress when first seen and when that was
        seen: tuple[object, float, float] | None = None
        while True:
            state = self.preparation_state(job)
            now = time.monotonic()
            if state is not None and (seen is None or seen[0] != state["step"]):
                seen = (state["step"], float(state["progress"]), now)
            seconds = None
            with contextlib.suppress(DatabaseUnavailable):
                if not first and state is not None and seen is not None:
                    seconds = await self._preparation_eta(
                        job, state, seen, now, catalog_records=catalog_records
                    )
                await self.store.set_job_preparation(job.id, state, eta_seconds=seconds)
            if first:
                first = False
                with contextlib.suppress(DatabaseUnavailable):
                    project = await self.store.get_project(uuid.UUID(job.project_id), owner=None)
                    catalog_records = project.catalog_count if project else 0
            await asyncio.sleep(PREPARATION_REPORT_SECONDS)

    async def _preparation_eta(
        self,
        job: Job,
        state: Mapping[str, object],
        seen: tuple[object, float, float],
        now: float,
        *,
        catalog_records: int,
    ) -> float | None:
        """The ETA of a job still being prepared: the build's step left (its own pace, or
        known rates per record), the peers if still to come, then the job's items at the
        stage's prior rate and the later stages at theirs."""
        step = str(state["step"])
        records = catalog_records if step == "catalog_index" else job.total_items
        prior_build = records / PREPARATION_RECORDS_PER_SECOND[step]
        build = eta.build_seconds_left(
            float(state["progress"]),
            progress_seen=seen[1],
            elapsed=now - seen[2],
            prior_seconds=prior_build,
        )
        if step == "catalog_index" and self._index_keys(job)[1] is not None:
            build += job.total_items / PREPARATION_RECORDS_PER_SECOND["peers"]
        stage = _stage(job)
        if job.stage_total:
            remaining = job.stage_total - job.stage_processed
        else:
            remaining = job.total_items - job.processed_items
        return eta.eta_seconds(
            max(0, remaining),
            # a job prepared again mid-way (another process, a restart) has its own rate
            job.items_per_second or await self._prior_rate(job, stage),
            later_stages_seconds=_later_stages_eta(job, max(job.current_stage, 1)),
            preparation_seconds=build,
        )

    async def _prior_rate(self, job: Job, stage: str) -> float:
        """What ``stage`` is expected to run at before (and, fading, beside) the job's own
        chunks: the median rate of recent completed jobs' same stage (the owner's first),
        else :func:`~service.stage_runners.prior_items_per_second` for the project's catalog."""
        return (await self._prior(job, stage))["prior_rate"]

    async def _prior(self, job: Job, stage: str) -> dict[str, float]:
        """The stage's prior rate and how many chunks it counts for (a default constant
        less than this deployment's history), as ``commit_chunk`` takes them; cached per
        process for :data:`PRIOR_RATE_TTL_SECONDS`."""
        key = (job.project_id, stage)
        cached = self._prior_rates.get(key)
        if cached is not None and time.monotonic() - cached[1] < PRIOR_RATE_TTL_SECONDS:
            return cached[0]
        try:
            rates = await self.store.recent_stage_rates(job.project_id, stage, jobs=PRIOR_RATE_JOBS)
        except DatabaseUnavailable:
            rates = []
        if rates:
            prior = {"prior_rate": statistics.median(rates), "prior_chunks": eta.PRIOR_CHUNKS}
        else:
            records = 0
            with contextlib.suppress(DatabaseUnavailable):
                project = await self.store.get_project(uuid.UUID(job.project_id), owner=None)
                records = project.catalog_count if project else 0
            processes = self.index_cache.processes
            helpers = processes.helping(records) if processes is not None else 0
            prior = {
                "prior_rate": prior_items_per_second(stage, records, helpers),
                "prior_chunks": eta.DEFAULT_PRIOR_CHUNKS,
            }
        self._prior_rates[key] = (prior, time.monotonic())
        return prior

    async def _await_preparation(self, job: Job, wait: float) -> ChunkOutcome | None:
        """Wait up to ``wait`` seconds for the job's preparation; None when the chunk may
        run in this call (ready at once, or the build failed and the chunk reports it),
        else the answer without a chunk."""
        started = time.monotonic()
        inline = PREPARATION_JOIN_INLINE_SECONDS
        if job.id not in self._preparations:  # this call starts it
            inline = PREPARATION_INLINE_SECONDS
        task = self._preparation_task(job)
        done, _ = await asyncio.wait({task}, timeout=max(0.0, wait))
        if task in done and (not task.result() or time.monotonic() - started <= inline):
            return None
        state = self.preparation_state(job)
        current = await self.store.get_job(uuid.UUID(job.id)) or job
        current = dataclasses.replace(current, preparation=state)
        if state is None:
            message = "Prepared: the catalog index and peers are ready; chunks follow"
        else:
            what = "catalog index" if state["step"] == "catalog_index" else "items' peers"
            message = f"Preparing: building the {what} ({100 * float(state['progress']):.0f}%)"
        return ChunkOutcome(current, message, preparing=True)

    async def prewarm(self, project_id: str) -> None:
        """Build the index of the project's current catalog for the default match fields
        (``name``, else ``title``), and the peers of its items, so a job's first chunk
        need not. Only a cache: failures are logged and the first chunk builds them.

        Uploads in quick succession build once: each waits :data:`PREWARM_QUIET_SECONDS`
        and gives way if another upload came in meanwhile (its own prewarm follows)."""
        try:
            versions = await self.store.versions(project_id)
            await asyncio.sleep(PREWARM_QUIET_SECONDS)
            if await self.store.versions(project_id) != versions:
                return
            project = await self.store.get_project(uuid.UUID(project_id), owner=None)
            if project is None:
                return
            fields = tuple(default_fields(project.catalog_columns))
            if not fields:
                return
            item_fields = tuple(default_fields(project.item_columns))
            if item_fields:
                await self._catalog_and_peers(
                    project_id, (versions[0], fields), (versions[1], item_fields)
                )
            else:
                await self._catalog(project_id, versions[0], fields)
        except Exception:
            logger.warning("could not pre-build the catalog index of %s", project_id, exc_info=True)

    async def _catalog(
        self, project_id: str, version: int, fields: tuple[str, ...]
    ) -> CatalogEntry:
        """The index of the project's catalog ``version`` (its ``fields``)."""
        return await self.index_cache.get(
            (project_id, version, fields),
            lambda: self.store.catalog_texts(project_id, version, fields),
        )

    async def _catalog_and_peers(
        self,
        project_id: str,
        catalog: tuple[int, tuple[str, ...]],
        items: tuple[int, tuple[str, ...]],
    ) -> tuple[CatalogEntry, PeerSet | None]:
        """The index of the project's catalog (version, fields) and, if it is not empty,
        the project's items (version, fields) as rivals for its records."""
        (catalog_version, catalog_fields), (items_version, item_fields) = catalog, items
        return await self.index_cache.with_peers(
            (project_id, catalog_version, catalog_fields),
            lambda: self.store.catalog_texts(project_id, catalog_version, catalog_fields),
            (project_id, items_version, item_fields),
            lambda: self.store.item_texts(project_id, items_version, item_fields),
        )

    async def candidates(
        self, job: Job, item_id: str, k: int
    ) -> tuple[list[MatchResult], Mapping[str, str]] | None:
        """An item's ``k`` best catalog records as the job's fuzzy stage scores them, and
        the catalog's texts; None when the job does not hold the item."""
        text = await self.store.job_item_text(job, item_id, list(job.config["itemFields"]))
        if text is None:
            return None
        catalog, peers = await self._job_index(job, with_peers=True)
        if not len(catalog.index):
            return [], catalog.texts
        [found] = await asyncio.to_thread(
            catalog.index.candidates_many, [(item_id, text)], k=k, peers=peers
        )
        return found, catalog.texts

    def _index_keys(self, job: Job) -> tuple[IndexKey, PeersKey | None]:
        """The cache keys of the job's catalog index and (its enhanced stage only) peers."""
        catalog_key = (job.project_id, job.catalog_version, tuple(job.config["catalogFields"]))
        if _stage(job) != "enhanced":
            return catalog_key, None
        return catalog_key, (job.project_id, job.items_version, tuple(job.config["itemFields"]))

    async def _job_index(
        self, job: Job, *, with_peers: bool
    ) -> tuple[CatalogEntry, PeerSet | None]:
        """The index of the job's catalog version on its fields, and (``with_peers``, a
        non-empty catalog) the peers of its items version: uploads meanwhile do not mix in."""
        item_fields = tuple(job.config["itemFields"])
        catalog_fields = tuple(job.config["catalogFields"])
        if not with_peers:
            return await self._catalog(job.project_id, job.catalog_version, catalog_fields), None
        return await self._catalog_and_peers(
            job.project_id,
            (job.catalog_version, catalog_fields),
            (job.items_version, item_fields),
        )

    async def _keep_lease(self, chunk: ChunkClaim) -> None:
        """Renew the chunk's lease every third of its length while the chunk runs."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.store.renew_lease(chunk, lease_seconds=self.lease_seconds):
                    logger.warning("chunk %s of job %s lost its lease", chunk.seq, chunk.job_id)
                    return
            except DatabaseUnavailable:
                logger.warning("could not renew the lease of chunk %s: database down", chunk.seq)

    async def _run_stage(self, job: Job, chunk: ChunkClaim) -> tuple[StageOutcome, float]:
        """What the stage made of the chunk, and the seconds it took to get the index and
        peers (building them, or waiting for their build: time the ETA leaves out)."""
        stage = job.stages[chunk.stage - 1]
        if stage != "enhanced" and self.providers is None:
            raise RuntimeError(f"stage {stage!r} needs providers, and this engine has none")
        preparing = time.perf_counter()
        catalog, peers = await self._job_index(job, with_peers=stage == "enhanced")
        prepare_seconds = time.perf_counter() - preparing
        items = await self._chunk_items(job, chunk, catalog if peers is not None else None)
        held_scores = None
        if stage == "enhanced" and job.config.get("oneToOne"):
            held_scores = functools.partial(self.store.held_scores, job.id)
        threshold = float(job.config["threshold"])
        helpers: Sequence[RemoteMatch] = ()
        prefetched = None
        processes = self.index_cache.processes
        shared = peers is not None and processes is not None and held_scores is None
        if shared:
            catalog_key, peers_key = self._index_keys(job)
            assert processes is not None and peers_key is not None
            helpers = processes.matchers(catalog_key, peers_key)
            prefetched = processes.take_prefetched(catalog_key, peers_key, items, threshold)
        context = StageContext(
            catalog=catalog,
            peers=peers,
            threshold=threshold,
            providers=self.providers,  # type: ignore[arg-type]
            deadline=time.monotonic() + self.chunk_time_budget_seconds,
            held_scores=held_scores,
            helpers=helpers,
            prefetched=prefetched,
        )
        outcome = await RUNNERS[stage](context, items)
        if shared and processes.will_hold(catalog_key, peers_key):
            # the next chunk's last share, matched while this one commits (by a helper that
            # holds or is loading the index and peers)
            task = asyncio.create_task(
                self._prefetch(job, chunk, catalog, threshold, (catalog_key, peers_key))
            )
            self._prefetches.add(task)
            task.add_done_callback(self._prefetches.discard)
        return outcome, prepare_seconds

    async def _prefetch_first(self, job: Job, catalog: CatalogEntry) -> None:
        """Once a job is prepared, have a helper match ahead the last share of its next
        chunk (its first), as it does for each chunk after the one before.

        The helpers load the index once it is built, and the peers once they are: the
        peers' load, and with peers drafted beside the index the index's too, come after
        the server is ready. A first chunk run during that load took two to three times the
        median (the server alone, its two cores shared with the load; 100k x 100k: 778 ms,
        then 518 ms, against a median of 359 ms). So the preparation waits up to
        :data:`HELPER_LOAD_WAIT_SECONDS` for the load, and the job is shown preparing
        meanwhile."""
        processes = self.index_cache.processes
        catalog_key, peers_key = self._index_keys(job)
        if processes is None or peers_key is None or job.config.get("oneToOne"):
            return
        if not processes.will_hold(catalog_key, peers_key):
            return
        # a chunk that would end where the job's claims are
        before = ChunkClaim(job.id, 0, job.current_stage, job.claimed_items, job.claimed_items, "")
        try:
            if not processes.holds(catalog_key, peers_key) and not await processes.loaded(
                catalog_key, peers_key, HELPER_LOAD_WAIT_SECONDS
            ):
                return  # a share would wait for the load: the server matches it alone
            threshold = float(job.config["threshold"])
            await self._prefetch(job, before, catalog, threshold, (catalog_key, peers_key))
        except Exception:  # only a head start is lost
            logger.warning("could not match ahead for job %s", job.id, exc_info=True)

    async def _prefetch(
        self,
        job: Job,
        chunk: ChunkClaim,
        catalog: CatalogEntry,
        threshold: float,
        keys: tuple[IndexKey, PeersKey],
    ) -> None:
        """Have a helper match the last share of the chunk this process will most likely
        claim next (the job's next range, after ``chunk``): a cache of work, used only if
        that chunk, its items and threshold turn out the same
        (:meth:`MatchProcesses.take_prefetched`)."""
        processes = self.index_cache.processes
        assert processes is not None
        catalog_key, peers_key = keys
        following = dataclasses.replace(
            chunk, ord_from=chunk.ord_to, ord_to=chunk.ord_to + job.chunk_size
        )
        try:
            ids = await self.store.chunk_item_ids(following)
        except DatabaseUnavailable:
            return
        texts = catalog.peer_texts(peers_key)
        if len(ids) < MIN_SPLIT_ITEMS or texts is None or not all(i in texts for i in ids):
            return
        share = ids[len(ids) - round(PREFETCH_SHARE * len(ids)) :]
        items = [(i, texts[i]) for i in share]
        processes.prefetch(catalog_key, peers_key, items, threshold, len(ids))

    async def _chunk_items(
        self, job: Job, chunk: ChunkClaim, catalog: CatalogEntry | None
    ) -> list[tuple[str, str]]:
        """The chunk's items with their texts as of the job's items version: from the
        texts its peers were built from (the same version and fields) when they are
        cached, which spares PostgreSQL a join per item; else from PostgreSQL."""
        peers_key = (job.project_id, job.items_version, tuple(job.config["itemFields"]))
        texts = catalog.peer_texts(peers_key) if catalog is not None else None
        if texts is not None:
            ids = await self.store.chunk_item_ids(chunk)
            if all(i in texts for i in ids):
                return [(i, texts[i]) for i in ids]
        return await self.store.chunk_items(chunk, job, list(job.config["itemFields"]))


def _chunk_extra(job: Job, chunk: ChunkClaim, **more: object) -> dict[str, object]:
    """A chunk's log fields (``CHUNKMATCH_LOG_FORMAT=json`` writes them as keys)."""
    return {"job_id": job.id, "stage": job.stages[chunk.stage - 1], "chunk": chunk.seq} | more


def _stage(job: Job) -> str:
    """The job's current stage (``enhanced``, ``ai``, ``web-search``)."""
    return job.stages[min(max(job.current_stage, 1), len(job.stages)) - 1]


def _preparation(step: str, progress: float) -> dict[str, object]:
    return {"step": step, "progress": round(min(max(progress, 0.0), 1.0), 3)}


def _later_stages_eta(job: Job, stage: int) -> float:
    """Seconds the stages after ``stage`` (1-based) may take, at their prior rates, for items
    not yet finished (an upper bound: some will be matched before they get there)."""
    later = job.stages[stage:]
    unfinished = max(0, job.total_items - job.processed_items)
    return sum(unfinished / prior_items_per_second(stage) for stage in later)


def _idle_message(job: Job, *, busy: bool) -> str:
    if busy:
        return (
            "Every remaining chunk is being processed by another driver; "
            "poll the job or try again shortly"
        )
    if job.status == "paused":
        return "Job is paused; resume it to continue"
    if job.is_active and job.next_attempt_at is not None:
        why = job.waiting_reason or f"retrying after an error ({job.error})"
        return f"Job is waiting: {why}; next attempt at {job.next_attempt_at.isoformat()}"
    return f"Job is {job.status}; nothing to process"

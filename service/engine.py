"""The chunk engine: claim a chunk → run the job's stage on it → commit matches and progress.

Every step's truth is in PostgreSQL: a driver holds a chunk only through its lease (renewed
while the chunk runs), and its results count only if the compare-and-set commit finds the
lease still its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from dataclasses import dataclass

from service.catalog_index import IndexCache
from service.exceptions import DatabaseUnavailable
from service.models import ChunkClaim, Job
from service.store import Store

logger = logging.getLogger("chunkmatch.engine")

_HOST = socket.gethostname()


@dataclass(frozen=True)
class ChunkOutcome:
    job: Job
    message: str
    processed: int = 0
    new_matches: int = 0
    busy: bool = False


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
    ) -> None:
        self.store = store
        self.index_cache = index_cache
        self.lease_seconds = lease_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds

    async def process_next_chunk(self, job_id: uuid.UUID) -> ChunkOutcome | None:
        """Advance ``job_id`` by exactly one chunk; ``None`` if there is no such job."""
        outcome = await self.store.claim_chunk(
            job_id, owner=_owner(), lease_seconds=self.lease_seconds
        )
        if outcome is None:
            return None
        job, chunk = outcome.job, outcome.chunk
        if chunk is None:
            return ChunkOutcome(job, _idle_message(job, busy=outcome.busy), busy=outcome.busy)
        renewer = asyncio.create_task(self._keep_lease(chunk))
        try:
            matches = await self._run_stage(job, chunk)
        except (asyncio.CancelledError, DatabaseUnavailable):
            # not the job's fault: give the chunk back for the next driver
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_chunk(chunk))
            raise
        except Exception as exc:  # a bug, bad data or a provider gave up: retry the job later
            logger.exception("chunk %s of job %s failed", chunk.seq, job.id)
            return await self._chunk_failed(job, chunk, exc)
        finally:
            renewer.cancel()
        committed = await self.store.commit_chunk(chunk, job.project_id, matches)
        if committed is None:
            current = await self.store.get_job(job_id)
            return ChunkOutcome(
                current or job,
                f"Chunk {chunk.seq} lost its lease before it was committed; "
                "its items will be processed again",
            )
        logger.info(
            "job %s chunk %d: %d items, %d matches, progress %d/%d",
            job.id,
            chunk.seq,
            chunk.size,
            len(matches),
            committed.processed_items,
            committed.total_items,
        )
        message = f"Processed {chunk.size} items, {len(matches)} new matches"
        if committed.status == "completed":
            message += "; job completed"
        return ChunkOutcome(committed, message, chunk.size, len(matches))

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

    async def _run_stage(
        self, job: Job, chunk: ChunkClaim
    ) -> list[tuple[str, str, float, str, str]]:
        stage = job.stages[chunk.stage - 1]
        if stage != "enhanced":  # later stages arrive with their issue
            raise NotImplementedError(f"stage {stage!r} is not available on this server")
        item_fields = list(job.config["itemFields"])
        catalog_fields = tuple(job.config["catalogFields"])
        items = await self.store.chunk_items(chunk, job.project_id, item_fields)
        version = await self.store.catalog_version(job.project_id)
        index = await self.index_cache.get(
            (job.project_id, version or 0, catalog_fields),
            lambda: self.store.catalog_texts(job.project_id, catalog_fields),
        )
        threshold = float(job.config["threshold"])
        results = await asyncio.to_thread(index.match, items, threshold=threshold)
        return [(r.item_id, r.catalog_id, float(r.score), r.method, r.reason) for r in results]


def _idle_message(job: Job, *, busy: bool) -> str:
    if busy:
        return (
            "Every remaining chunk is being processed by another driver; "
            "poll the job or try again shortly"
        )
    if job.status == "paused":
        return "Job is paused; resume it to continue"
    if job.is_active and job.next_attempt_at is not None:
        return (
            f"Job is waiting to retry after an error ({job.error}); "
            f"next attempt at {job.next_attempt_at.isoformat()}"
        )
    return f"Job is {job.status}; nothing to process"

"""The chunk engine: claim a chunk → run the job's stage on it → commit matches and progress.

Every step's truth is in PostgreSQL: a driver holds a chunk only through its lease, and
its results count only if the compare-and-set commit finds the lease still its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from service.catalog_index import IndexCache
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


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Engine:
    def __init__(self, store: Store, index_cache: IndexCache, *, lease_seconds: float) -> None:
        self.store = store
        self.index_cache = index_cache
        self.lease_seconds = lease_seconds

    async def process_next_chunk(self, job_id: uuid.UUID) -> ChunkOutcome | None:
        """Advance ``job_id`` by exactly one chunk; ``None`` if there is no such job."""
        outcome = await self.store.claim_chunk(
            job_id, owner=_owner(), lease_seconds=self.lease_seconds
        )
        if outcome is None:
            return None
        job, chunk = outcome.job, outcome.chunk
        if chunk is None:
            if outcome.busy:
                return ChunkOutcome(
                    job,
                    "Every remaining chunk is being processed by another driver; "
                    "poll the job or try again shortly",
                )
            return ChunkOutcome(job, f"Job is {job.status}; nothing to process")
        try:
            matches = await self._run_stage(job, chunk)
        except asyncio.CancelledError:
            await asyncio.shield(self.store.release_chunk(chunk))
            raise
        except Exception as exc:  # a bug or bad data in a stage: fail the job, say why
            logger.exception("chunk %s of job %s failed", chunk.seq, job.id)
            await self.store.release_chunk(chunk)
            failed = await self.store.fail_job(job.id, f"{type(exc).__name__}: {exc}")
            return ChunkOutcome(failed or job, f"Chunk {chunk.seq} failed: {exc}")
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

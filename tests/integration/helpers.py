"""What the integration tests share: making jobs, and driving them past their preparation."""

from __future__ import annotations

import uuid

from service.engine import ChunkOutcome, Engine
from service.models import Job, Project
from service.stages import resolve_job
from service.store import Store

PREPARATION_CALLS = 50
"""How many answers a test lets stop at a job's preparation (each waits up to
PREPARATION_WAIT_SECONDS for it) before it calls the job stuck."""


async def enhanced_job(store: Store, project: Project, chunk_size: int = 10) -> Job:
    """A new ``enhanced`` job of the project, on its default fields."""
    stages, config = resolve_job("enhanced", {"chunkSize": chunk_size}, project)
    return await store.create_job(
        uuid.UUID(project.id),
        job_type="enhanced",
        config=config,
        stages=stages,
        stage_name="Enhanced Matching",
        chunk_size=chunk_size,
        priority=5,
        max_attempts=3,
    )


async def process_chunk(engine: Engine, job_id: uuid.UUID) -> ChunkOutcome:
    """The first ``engine.process_next_chunk`` outcome on ``job_id`` past the job's
    preparation: one that ran a chunk (or said why none was due).

    An engine builds a job's catalog index and peers before its first chunk there and waits
    for that only briefly inline (service/engine.py), so under load the first calls may
    answer ``preparing`` and run no chunk."""
    for _ in range(PREPARATION_CALLS):
        outcome = await engine.process_next_chunk(job_id)
        assert outcome is not None, f"no job {job_id}"
        if not outcome.preparing:
            return outcome
    raise AssertionError(
        f"no answer got past the preparation in {PREPARATION_CALLS} calls; "
        f"the last: {outcome.message!r}"
    )

"""What the integration tests share."""

from __future__ import annotations

import uuid

from service.models import Job, Project
from service.stages import resolve_job
from service.store import Store


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

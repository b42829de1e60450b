"""The only module that talks to PostgreSQL.

Queries live in ``sql/queries.sql`` as named blocks (``-- name --`` then a one-line
description); this module runs them and hands out the frozen records of
:mod:`service.models`, never driver records.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import wraps
from importlib import resources
from typing import Any, TypeVar

import asyncpg

from service.exceptions import DatabaseUnavailable
from service.models import ChunkClaim, ClaimOutcome, Job, MatchRow, Project, UploadResult

_BLOCK = re.compile(r"^-- (\w+) --$", re.MULTILINE)

T = TypeVar("T")


def load_queries() -> dict[str, str]:
    text = (resources.files("service") / "sql" / "queries.sql").read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip().splitlines()
        # the first line is the block's description comment
        queries[name] = "\n".join(lines[1:]).strip()
    return queries


queries = load_queries()

# Errors meaning "the database is not there right now", as opposed to a bug in a query.
_UNAVAILABLE = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    TimeoutError,
)


def wrap_unavailable(fn: Callable[..., T]) -> Callable[..., T]:
    """Translate driver connection failures into :class:`DatabaseUnavailable` (503)."""

    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable() from exc

    return wrapper  # type: ignore[return-value]


class Store:
    """chunkmatch's data, in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    # -- health ------------------------------------------------------------------------

    @wrap_unavailable
    async def ping(self) -> None:
        await self.pool.fetchval(queries["ping"])

    # -- projects ----------------------------------------------------------------------

    @wrap_unavailable
    async def create_project(self, name: str) -> Project:
        row = await self.pool.fetchrow(queries["create_project"], name)
        return Project.from_row(row)

    @wrap_unavailable
    async def list_projects(self, *, limit: int) -> list[Project]:
        rows = await self.pool.fetch(queries["list_projects"], limit)
        return [Project.from_row(r) for r in rows]

    @wrap_unavailable
    async def get_project(self, project_id: uuid.UUID) -> Project | None:
        row = await self.pool.fetchrow(queries["get_project"], project_id)
        return Project.from_row(row) if row else None

    @wrap_unavailable
    async def upload_records(
        self,
        project_id: uuid.UUID,
        kind: str,
        records: Sequence[tuple[str, str]],
        columns: Sequence[str],
    ) -> UploadResult | None:
        """Insert or replace ``(record_id, json_text)`` records of ``kind`` (catalog|items).

        One transaction: COPY into a staging table, then one upsert. Returns ``None`` when
        the project does not exist.
        """
        async with self._tx() as conn:
            if await conn.fetchrow(queries["lock_project"], project_id) is None:
                return None
            await conn.execute(queries["create_upload_table"])
            await conn.copy_records_to_table(
                "upload_records", records=records, columns=["record_id", "data"]
            )
            row = await conn.fetchrow(queries[f"upsert_{kind}"], project_id)
            await conn.execute(
                queries[f"add_{'catalog' if kind == 'catalog' else 'item'}_columns"],
                project_id,
                list(columns),
            )
            return UploadResult(inserted=row["inserted"], updated=row["updated"])

    # -- jobs --------------------------------------------------------------------------

    @wrap_unavailable
    async def create_job(
        self,
        project_id: uuid.UUID,
        *,
        job_type: str,
        config: dict[str, Any],
        stages: Sequence[str],
        stage_name: str,
        chunk_size: int,
    ) -> Job:
        async with self._tx() as conn:
            # serialise with uploads so the snapshot sees a whole upload or none of it
            await conn.fetchrow(queries["lock_project"], project_id)
            job_id = await conn.fetchval(
                queries["insert_job"],
                project_id,
                job_type,
                config,
                list(stages),
                stage_name,
                chunk_size,
            )
            status = await conn.execute(queries["snapshot_job_items"], job_id, project_id)
            total = int(status.rsplit(" ", 1)[-1])
            await conn.execute(queries["set_job_total"], job_id, total)
            return Job.from_row(await conn.fetchrow(queries["get_job"], job_id))

    @wrap_unavailable
    async def get_job(self, job_id: uuid.UUID) -> Job | None:
        row = await self.pool.fetchrow(queries["get_job"], job_id)
        return Job.from_row(row) if row else None

    @wrap_unavailable
    async def list_jobs(self, project_id: uuid.UUID | None, *, limit: int) -> list[Job]:
        rows = await self.pool.fetch(queries["list_jobs"], project_id, limit)
        return [Job.from_row(r) for r in rows]

    @wrap_unavailable
    async def set_job_status(
        self, job_id: uuid.UUID, status: str, *, error: str | None, completed_at: Any
    ) -> Job | None:
        row = await self.pool.fetchrow(
            queries["set_job_status"], job_id, status, error, completed_at
        )
        return Job.from_row(row) if row else None

    @wrap_unavailable
    async def fail_job(self, job_id: uuid.UUID | str, error: str) -> Job | None:
        row = await self.pool.fetchrow(queries["fail_job"], _uuid(job_id), error)
        return Job.from_row(row) if row else None

    # -- chunks ------------------------------------------------------------------------

    @wrap_unavailable
    async def claim_chunk(
        self, job_id: uuid.UUID, *, owner: str, lease_seconds: float
    ) -> ClaimOutcome | None:
        """Lease the job's next chunk to ``owner``: an expired chunk first, else a new range.

        Returns ``None`` for an unknown job. ``chunk`` is ``None`` when there is nothing to
        lease: the job is not active, or every remaining range is held by another driver
        (``busy``). A job with nothing left to claim or commit is completed here.
        """
        async with self._tx() as conn:
            row = await conn.fetchrow(queries["lock_job"], job_id)
            if row is None:
                return None
            job = Job.from_row(row)
            if not job.is_active:
                return ClaimOutcome(job=job, chunk=None)
            taken = await conn.fetchrow(
                queries["reclaim_expired_chunk"], job_id, owner, lease_seconds
            )
            if taken is not None:
                chunk = ChunkClaim(
                    job.id, taken["seq"], taken["stage"], taken["ord_from"], taken["ord_to"], owner
                )
                return ClaimOutcome(job=job, chunk=chunk)
            if job.claimed_items < job.total_items:
                ord_to = min(job.total_items, job.claimed_items + job.chunk_size)
                seq = row["next_chunk_seq"]
                await conn.execute(queries["advance_claim"], job_id, ord_to)
                await conn.execute(
                    queries["insert_chunk"],
                    job_id,
                    seq,
                    job.current_stage,
                    job.claimed_items,
                    ord_to,
                    owner,
                    lease_seconds,
                )
                job = Job.from_row(await conn.fetchrow(queries["get_job"], job_id))
                chunk = ChunkClaim(
                    job.id, seq, job.current_stage, row["claimed_items"], ord_to, owner
                )
                return ClaimOutcome(job=job, chunk=chunk)
            running = await conn.fetchval(queries["count_running_chunks"], job_id)
            if running:
                return ClaimOutcome(job=job, chunk=None, busy=True)
            done = await conn.fetchrow(queries["complete_empty_job"], job_id)
            return ClaimOutcome(job=Job.from_row(done) if done else job, chunk=None)

    @wrap_unavailable
    async def chunk_items(
        self, chunk: ChunkClaim, project_id: str, fields: Sequence[str]
    ) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            queries["chunk_items"],
            _uuid(chunk.job_id),
            chunk.ord_from,
            chunk.ord_to,
            list(fields),
            _uuid(project_id),
        )
        return [(r["item_id"], r["text"]) for r in rows]

    @wrap_unavailable
    async def catalog_version(self, project_id: str) -> int | None:
        return await self.pool.fetchval(queries["catalog_version"], _uuid(project_id))

    @wrap_unavailable
    async def catalog_texts(self, project_id: str, fields: Sequence[str]) -> list[tuple[str, str]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(queries["catalog_texts"], _uuid(project_id), list(fields))
        return [(r["record_id"], r["text"]) for r in rows]

    @wrap_unavailable
    async def commit_chunk(
        self,
        chunk: ChunkClaim,
        project_id: str,
        matches: Sequence[tuple[str, str, float, str, str]],
    ) -> Job | None:
        """Commit a chunk's matches and the job's progress in one transaction.

        Compare-and-set on the chunk's lease: returns ``None`` (and writes nothing) when
        the driver no longer holds it.
        """
        job_id = _uuid(chunk.job_id)
        async with self._tx() as conn:
            stage = await conn.fetchval(
                queries["finish_chunk"], job_id, chunk.seq, chunk.owner, chunk.size, len(matches)
            )
            if stage is None:
                return None
            columns = list(zip(*matches, strict=True)) if matches else [[], [], [], [], []]
            inserted = await conn.fetchval(
                queries["insert_matches"],
                job_id,
                _uuid(project_id),
                chunk.stage,
                chunk.seq,
                *[list(c) for c in columns],
            )
            row = await conn.fetchrow(queries["advance_job"], job_id, chunk.size, inserted)
            return Job.from_row(row)

    @wrap_unavailable
    async def release_chunk(self, chunk: ChunkClaim) -> None:
        await self.pool.execute(
            queries["release_chunk"], _uuid(chunk.job_id), chunk.seq, chunk.owner
        )

    # -- matches -----------------------------------------------------------------------

    @wrap_unavailable
    async def job_matches(self, job: Job, *, after_id: int, limit: int) -> list[MatchRow]:
        rows = await self.pool.fetch(
            queries["job_matches_page"],
            _uuid(job.id),
            after_id,
            limit,
            list(job.config.get("itemFields", [])),
            list(job.config.get("catalogFields", [])),
        )
        return [MatchRow.from_row(r) for r in rows]


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def to_json_text(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))

"""The only module that talks to PostgreSQL.

Queries live in ``sql/queries.sql`` as named blocks (``-- name --`` then a one-line
description); this module runs them and hands out the frozen records of
:mod:`service.models`, never driver records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import wraps
from importlib import resources
from typing import Any, TypeVar

import asyncpg

from matching.claims import SHARED_CLAIMS_FLOOR
from matching.review import MAX_CONTESTED_CLAIMS, SHARED_RECORD_ALLOWANCE
from service import eta
from service.exceptions import (
    Conflict,
    DatabaseUnavailable,
    DuplicateRecordId,
    QuotaExceeded,
    ValidationError,
    shown,
)
from service.models import (
    LIVE_STATUSES,
    ApiToken,
    ChunkClaim,
    ChunkRecord,
    ClaimOutcome,
    Job,
    MatchRow,
    Project,
    ReviewDecision,
    ReviewPair,
    StageOutcome,
    UploadResult,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from service.stages import STAGE_NAMES, stage_chunk_size
from service.tokens import Principal, new_token, shown_prefix, token_hash

ETA_CHUNKS = 40
"""Latest chunks of a stage its rate is taken from (older ones weigh next to nothing)."""

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
    # a connection lost mid-operation can leave asyncpg's protocol in a state it reports as
    # an internal error (seen when PostgreSQL restarts under load)
    asyncpg.exceptions.InternalClientError,
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


def touches_job(
    job_of: Callable[..., Any] | None,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Mark a method that may change a job's row (``job_of(*args)`` names it; ``None``: any
    job): :attr:`Store.on_job_write` hears of it before and after, so that a process's
    in-memory snapshots never outlive a change this process made (NOTIFY tells the rest)."""

    def mark(fn: Callable[..., T]) -> Callable[..., T]:
        @wraps(fn)
        async def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
            job_id = str(job_of(*args, **kwargs)) if job_of is not None else None
            self._job_written(job_id)
            try:
                return await fn(self, *args, **kwargs)
            finally:
                self._job_written(job_id)

        return wrapper  # type: ignore[return-value]

    return mark


class Store:
    """chunkmatch's data, in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        # told of every change this process makes to a job (its id; None: possibly any)
        self.on_job_write: Callable[[str | None], None] | None = None
        self._listeners: dict[int, list[tuple[str, Callable[..., None]]]] = {}

    def _job_written(self, job_id: str | None) -> None:
        if self.on_job_write is not None:
            self.on_job_write(job_id)

    @asynccontextmanager
    async def _tx(self, *, durable: bool = True) -> AsyncIterator[asyncpg.Connection]:
        """A transaction; ``durable=False``: its commit does not wait for the disk (the
        ``async_commit`` query: the chunk path's, see :meth:`claim_chunk`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not durable:
                await conn.execute(queries["async_commit"])
            yield conn

    # -- health ------------------------------------------------------------------------

    @wrap_unavailable
    async def ping(self) -> None:
        await self.pool.fetchval(queries["ping"])

    # -- projects ----------------------------------------------------------------------

    @wrap_unavailable
    async def create_project(
        self, name: str, *, owner: str, max_projects: int | None = None
    ) -> Project:
        """A new project of ``owner``; :class:`QuotaExceeded` when it has ``max_projects``."""
        async with self._tx() as conn:
            await conn.execute(queries["lock_owner_projects"], owner)
            row = await conn.fetchrow(queries["create_project"], name, owner, max_projects)
        if row is None:
            raise QuotaExceeded(
                f"owner {owner!r} already has {max_projects:,} projects, the most allowed "
                "(CHUNKMATCH_MAX_PROJECTS_PER_OWNER)"
            )
        return Project.from_row(row)

    @wrap_unavailable
    async def list_projects(self, *, limit: int, owner: str | None) -> list[Project]:
        """Projects of ``owner`` (``None``: everyone's), newest first."""
        rows = await self.pool.fetch(queries["list_projects"], limit, owner)
        return [Project.from_row(r) for r in rows]

    @wrap_unavailable
    async def get_project(self, project_id: uuid.UUID, *, owner: str | None) -> Project | None:
        """The project, if it exists and belongs to ``owner`` (``None``: anyone)."""
        row = await self.pool.fetchrow(queries["get_project"], project_id, owner)
        return Project.from_row(row) if row else None

    @wrap_unavailable
    async def upload_records(
        self,
        project_id: uuid.UUID,
        kind: str,
        records: Sequence[tuple[str, str]],
        columns: Sequence[str],
        *,
        max_records: int | None = None,
    ) -> UploadResult | None:
        """Insert or replace ``(record_id, json_text)`` records of ``kind`` (catalog|items).

        One transaction: COPY into a staging table, then a new version of the record set:
        changed records are closed (jobs of earlier versions still see them) and replaced,
        and matches whose text changed become stale. Returns ``None`` when the project does
        not exist.
        """
        async with self._tx() as conn:
            if await conn.fetchrow(queries["lock_project"], project_id) is None:
                return None
            await conn.execute(queries["create_upload_table"])
            await conn.copy_records_to_table(
                "upload_records", records=records, columns=["record_id", "data"]
            )
            return await self._apply_upload(
                conn, project_id, kind, columns, staged=len(records), max_records=max_records
            )

    @wrap_unavailable
    async def upload_table(
        self,
        project_id: uuid.UUID,
        kind: str,
        columns: Sequence[str],
        batches: AsyncIterator[Sequence[tuple[int, str, str]]],
        *,
        line_word: str = "line",
        max_records: int | None = None,
    ) -> UploadResult | None:
        """Insert or replace records of ``kind`` arriving as ``(line, record_id, json_text)``
        batches (a CSV or a sheet being parsed): each batch is copied as it comes, then the
        staged upload becomes a new version as in :meth:`upload_records`.

        Ids must be unique within the upload: the staged copy is checked at the end, and a
        repeated id raises :class:`DuplicateRecordId` naming both lines (nothing is written).
        Returns ``None`` when the project does not exist.
        """
        async with self._tx() as conn:
            if await conn.fetchrow(queries["lock_project"], project_id) is None:
                return None
            await conn.execute(queries["create_upload_table"])
            staged = 0
            async for batch in batches:
                await conn.copy_records_to_table(
                    "upload_records", records=batch, columns=["line", "record_id", "data"]
                )
                staged += len(batch)
            dup = await conn.fetchrow(queries["upload_duplicate"])
            if dup is not None:
                raise DuplicateRecordId(
                    dup["record_id"], dup["line"], dup["first_line"], word=line_word
                )
            return await self._apply_upload(
                conn, project_id, kind, columns, staged=staged, max_records=max_records
            )

    @staticmethod
    async def _apply_upload(
        conn: asyncpg.Connection,
        project_id: uuid.UUID,
        kind: str,
        columns: Sequence[str],
        *,
        staged: int,
        max_records: int | None,
    ) -> UploadResult:
        """Make the ``staged`` records in ``upload_records`` a new version of ``kind``'s set:
        changed records are closed (jobs of earlier versions still see them) and replaced,
        and matches whose text changed become stale. More than ``max_records`` current
        records of ``kind`` raises :class:`QuotaExceeded`."""
        version = await conn.fetchval(
            queries[f"add_{'catalog' if kind == 'catalog' else 'item'}_columns"],
            project_id,
            list(columns),
        )
        updated = await conn.fetchval(queries[f"count_current_{kind}"], project_id)
        if max_records is not None and staged > updated:
            total = await conn.fetchval(queries[f"count_{kind}"], project_id) + staged - updated
            if total > max_records:
                raise QuotaExceeded(
                    f"this upload would give the project {total:,} {kind} records; a project "
                    f"may have at most {max_records:,} (CHUNKMATCH_MAX_RECORDS_PER_PROJECT)"
                )
        closed = await conn.fetchrow(queries[f"close_changed_{kind}"], project_id, version)
        await conn.execute(queries[f"insert_{kind}"], project_id, version)
        if closed["changed"] and kind == "items":
            await conn.execute(queries["insert_changed_items"], project_id, version)
        if closed["changed"]:  # a column may have gone (renamed): new jobs must not use it
            await conn.execute(queries[f"current_{kind}_columns"], project_id)
        await conn.execute(queries[f"prune_{kind}_versions"], project_id)
        return UploadResult(inserted=staged - updated, updated=updated)

    @wrap_unavailable
    @touches_job(None)
    async def delete_project(self, project_id: uuid.UUID, *, force: bool = False) -> bool:
        """Delete the project with everything that names it; ``False`` if there is none.

        Raises :class:`Conflict` (with the jobs' ids) while it has unfinished jobs, unless
        ``force``, which cancels them first."""
        async with self._tx() as conn:
            if await conn.fetchrow(queries["lock_project"], project_id) is None:
                return False
            live = [r["id"] for r in await conn.fetch(queries["live_jobs_of_project"], project_id)]
            if live and not force:
                raise Conflict(
                    f"the project has {len(live)} unfinished job(s); cancel them, or delete "
                    "with ?force=true to cancel them first",
                    details={"liveJobIds": [str(j) for j in live]},
                )
            await conn.execute(queries["cancel_live_jobs"], project_id)
            return await conn.fetchval(queries["delete_project"], project_id) is not None

    @wrap_unavailable
    @touches_job(None)
    async def delete_record(self, project_id: uuid.UUID, kind: str, record_id: str) -> bool:
        """Delete one record of ``kind`` (catalog|items), every version of it, its matches
        and the reviewers' decisions about it; ``False`` if there is no such record."""
        side = "catalog" if kind == "catalog" else "items"
        async with self._tx() as conn:
            if await conn.fetchrow(queries["lock_project"], project_id) is None:
                return False
            query = "delete_catalog_record" if side == "catalog" else "delete_item"
            if await conn.execute(queries[query], project_id, record_id) == "DELETE 0":
                return False
            await conn.execute(queries["drop_record_matches"], project_id, record_id, side)
            await conn.execute(queries["drop_record_decisions"], project_id, record_id, side)
            # a new version: no process reuses an index or peers that hold the record
            await conn.execute(queries[f"bump_{side}_version"], project_id)
            await conn.execute(queries[f"current_{side}_columns"], project_id)
            return True

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
        priority: int,
        max_attempts: int,
        calibrated: bool = True,
    ) -> Job:
        """A pending job over the project's currently unmatched items that no reviewer has
        decided; ``calibrated``: its threshold is the project's re-fitted one, if it has one
        (the job records the calibration it used).

        Raises :class:`Conflict` (with the existing job's id) when the project already has a
        live job of this type.
        """
        async with self._tx() as conn:
            # serialise with uploads (the snapshot sees a whole upload or none of it) and
            # with other creations for the same project
            locked = await conn.fetchrow(queries["lock_project"], project_id)
            calibration = locked["calibration"] if locked is not None and calibrated else None
            if calibration is not None:
                config = {**config, "threshold": float(calibration["threshold"])}
            existing = await conn.fetchval(queries["active_job"], project_id, job_type)
            if existing is not None:
                raise _active_conflict(job_type, existing)
            try:
                job_id = await conn.fetchval(
                    queries["insert_job"],
                    project_id,
                    job_type,
                    config,
                    list(stages),
                    stage_name,
                    chunk_size,
                    priority,
                    max_attempts,
                    calibration,
                )
            except asyncpg.UniqueViolationError as exc:  # a racing creation won
                raise _active_conflict(job_type, None) from exc
            status = await conn.execute(queries["snapshot_job_items"], job_id, project_id)
            total = int(status.rsplit(" ", 1)[-1])
            await conn.execute(queries["set_job_total"], job_id, total)
            await conn.execute(queries["notify_job"], str(job_id))
            return Job.from_row(await conn.fetchrow(queries["get_job"], job_id))

    @wrap_unavailable
    async def get_job(self, job_id: uuid.UUID) -> Job | None:
        row = await self.pool.fetchrow(queries["get_job"], job_id)
        return Job.from_row(row) if row else None

    @wrap_unavailable
    async def set_job_preparation(
        self,
        job_id: str,
        preparation: Mapping[str, Any] | None,
        *,
        eta_seconds: float | None = None,
    ) -> None:
        """Record what the job's preparation is building (``None``: ready) and, unless
        None, the ETA it gives meanwhile."""
        await self.pool.execute(
            queries["set_job_preparation"],
            _uuid(job_id),
            None if preparation is None else dict(preparation),
            None if eta_seconds is None else round(eta_seconds, 1),
        )

    @wrap_unavailable
    async def recent_stage_rates(self, project_id: str, stage: str, *, jobs: int) -> list[float]:
        """Items per second the stage ``stage`` ran at in the latest ``jobs`` completed jobs
        that had it, those of the project's owner first (its first chunk left out)."""
        rows = await self.pool.fetch(queries["recent_stage_rates"], _uuid(project_id), stage, jobs)
        return [float(r["items_per_second"]) for r in rows]

    @wrap_unavailable
    async def get_owned_job(self, job_id: uuid.UUID, *, owner: str | None) -> Job | None:
        """The job, if its project belongs to ``owner`` (``None``: anyone)."""
        row = await self.pool.fetchrow(queries["get_owned_job"], job_id, owner)
        return Job.from_row(row) if row else None

    @wrap_unavailable
    async def list_jobs(
        self, project_id: uuid.UUID | None, *, limit: int, owner: str | None
    ) -> list[Job]:
        rows = await self.pool.fetch(queries["list_jobs"], project_id, limit, owner)
        return [Job.from_row(r) for r in rows]

    @wrap_unavailable
    @touches_job(lambda job_id, *a, **k: job_id)
    async def set_job_status(
        self,
        job_id: uuid.UUID,
        status: str,
        *,
        allowed_from: Sequence[str],
        error: str | None = None,
        completed_at: Any = None,
    ) -> Job | None:
        """Move the job to ``status`` if it is in one of ``allowed_from``; else ``None``."""
        async with self._tx() as conn:
            try:
                row = await conn.fetchrow(
                    queries["set_job_status"],
                    job_id,
                    status,
                    list(allowed_from),
                    error,
                    completed_at,
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(
                    "the project already has a live job of this type; finish or cancel it first"
                ) from exc
            if row is not None and status in ("pending", "processing"):
                await conn.execute(queries["notify_job"], str(job_id))
            return Job.from_row(row) if row else None

    @wrap_unavailable
    @touches_job(lambda job_id, *a, **k: job_id)
    async def record_chunk_error(
        self, job_id: uuid.UUID | str, error: str, *, retry_in_seconds: float
    ) -> Job | None:
        row = await self.pool.fetchrow(
            queries["record_chunk_error"], _uuid(job_id), error, retry_in_seconds
        )
        return Job.from_row(row) if row else None

    @wrap_unavailable
    async def runnable_jobs(self, *, limit: int) -> list[uuid.UUID]:
        return [r["id"] for r in await self.pool.fetch(queries["runnable_jobs"], limit)]

    @wrap_unavailable
    async def next_retry_at(self) -> datetime | None:
        return await self.pool.fetchval(queries["next_retry_at"])

    @wrap_unavailable
    async def job_counts(self) -> dict[str, int]:
        """How many jobs there are in each status (statuses with none left out)."""
        return {r["status"]: r["n"] for r in await self.pool.fetch(queries["job_counts"])}

    @wrap_unavailable
    async def jobs_summary(self, *, owner: str | None) -> dict[str, Any]:
        row = await self.pool.fetchrow(queries["jobs_summary"], owner)
        return dict(row)

    @wrap_unavailable
    @touches_job(None)
    async def delete_finished_jobs(self, *, days_old: float, owner: str | None = None) -> int:
        async with self._tx() as conn:
            deleted = await conn.fetchval(queries["delete_finished_jobs"], days_old, owner)
            if deleted:  # record versions only those jobs could see go too
                await _prune_versions(conn, None)
            return deleted

    @wrap_unavailable
    async def listen(
        self,
        channels: Mapping[str, Callable[[str], None]],
        *,
        on_lost: Callable[[], None] | None = None,
    ) -> asyncpg.Connection:
        """A dedicated connection calling ``channels[channel](payload)`` for each NOTIFY,
        and ``on_lost()`` if the connection closes (release it with
        :meth:`release_listener`)."""
        conn = await self.pool.acquire()
        added: list[tuple[str, Callable[..., None]]] = []
        self._listeners[id(conn)] = added
        try:
            for channel, on_payload in channels.items():

                def callback(
                    _conn: Any, _pid: int, _channel: str, payload: str, on=on_payload
                ) -> None:
                    on(payload)

                await conn.add_listener(channel, callback)
                added.append((channel, callback))
            if on_lost is not None:
                conn.add_termination_listener(lambda _conn: on_lost())
        except BaseException:
            await self.release_listener(conn)
            raise
        return conn

    @staticmethod
    def listener_closed(conn: asyncpg.Connection) -> bool:
        """True once a listening connection is gone (a pool's connection lost to a
        terminated backend is handed back to the pool and refuses even this question)."""
        try:
            return conn.is_closed()
        except asyncpg.InterfaceError:
            return True

    async def release_listener(self, conn: asyncpg.Connection) -> None:
        for channel, callback in self._listeners.pop(id(conn), []):
            with contextlib.suppress(Exception):
                await conn.remove_listener(channel, callback)
        with contextlib.suppress(Exception):
            await self.pool.release(conn)

    @wrap_unavailable
    async def job_snapshots(self, job_ids: Sequence[str]) -> dict[str, tuple[Job, str]]:
        """The jobs of ``job_ids`` that exist, each with its project's owner."""
        rows = await self.pool.fetch(queries["job_snapshots"], [_uuid(j) for j in job_ids])
        return {str(r["id"]): (Job.from_row(r), r["owner"]) for r in rows}

    # -- tokens ------------------------------------------------------------------------

    @wrap_unavailable
    async def create_token(self, owner: str, *, is_admin: bool) -> tuple[str, ApiToken]:
        """A new token for ``owner``: the token itself (shown once) and its record."""
        token = new_token()
        row = await self.pool.fetchrow(
            queries["insert_token"], owner, token_hash(token), shown_prefix(token), is_admin
        )
        return token, ApiToken.from_row(row)

    @wrap_unavailable
    async def principal_for(self, token: str) -> Principal | None:
        return await self.principal_for_hash(token_hash(token))

    @wrap_unavailable
    async def principal_for_hash(self, hashed: str) -> Principal | None:
        row = await self.pool.fetchrow(queries["token_principal"], hashed)
        return Principal(row["owner"], row["is_admin"]) if row else None

    @wrap_unavailable
    async def create_event_ticket(
        self, job_id: uuid.UUID, token: str, *, ttl_seconds: float
    ) -> tuple[str, datetime]:
        """A new ticket (shown once, stored as a hash) to open ``job_id``'s events as
        ``token``'s owner within ``ttl_seconds``; and when it expires."""
        ticket = new_token()
        expires_at = await self.pool.fetchval(
            queries["insert_event_ticket"],
            token_hash(ticket),
            job_id,
            token_hash(token),
            float(ttl_seconds),
        )
        return ticket, expires_at

    @wrap_unavailable
    async def ticket_principal(
        self, ticket: str, job_id: uuid.UUID
    ) -> tuple[Principal, str] | None:
        """Who ``ticket`` acts for on ``job_id``'s events, and its token's hash."""
        row = await self.pool.fetchrow(
            queries["event_ticket_principal"], token_hash(ticket), job_id
        )
        return (Principal(row["owner"], row["is_admin"]), row["token_hash"]) if row else None

    @wrap_unavailable
    async def list_tokens(self) -> list[ApiToken]:
        return [ApiToken.from_row(r) for r in await self.pool.fetch(queries["list_tokens"])]

    @wrap_unavailable
    async def revoke_token(self, id_or_prefix: str) -> ApiToken | None:
        row = await self.pool.fetchrow(queries["revoke_token"], id_or_prefix)
        return ApiToken.from_row(row) if row else None

    @wrap_unavailable
    async def count_tokens(self) -> int:
        return await self.pool.fetchval(queries["count_tokens"])

    # -- provider budgets ------------------------------------------------------------

    @wrap_unavailable
    async def reserve_budget(
        self, provider: str, *, requests: int, tokens: int, max_requests: int, max_tokens: int
    ) -> float | None:
        """Take room in this minute's shared budget: ``None`` if taken, else seconds to wait."""
        async with self.pool.acquire() as conn:
            taken = await conn.fetchval(
                queries["reserve_budget"], provider, requests, tokens, max_requests, max_tokens
            )
            if taken is not None:
                return None
            return await conn.fetchval(queries["seconds_to_next_window"])

    @wrap_unavailable
    async def prune_budget(self) -> None:
        await self.pool.execute(queries["prune_budget"])

    # -- chunks ------------------------------------------------------------------------

    @wrap_unavailable
    @touches_job(lambda job_id, *a, **k: job_id)
    async def claim_chunk(
        self, job_id: uuid.UUID, *, owner: str, lease_seconds: float
    ) -> ClaimOutcome | None:
        """Lease the job's next chunk to ``owner``: an expired chunk first, else a new range.

        Returns ``None`` for an unknown job. ``chunk`` is ``None`` when there is nothing to
        lease: the job is not runnable (finished, paused, waiting out a retry backoff), or
        every remaining range is held by another driver (``busy``). A job with nothing left
        to claim or commit is completed here.
        """
        # The chunk path's transactions (this claim, commit_chunk) do not wait for their WAL
        # to reach the disk: at 100k items a commit's flush took 0.4-0.9 s now and then
        # while the kernel wrote back the uploads' pages (PostgreSQL's log: `COMMIT` at
        # 739 ms beside 60 ms chunk commits; the next claim 1.7 s). What a crash of
        # PostgreSQL could undo is the last claims or commits as a whole (never part of
        # one): their chunks run again.
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(queries["async_commit"])
                taken = await conn.fetchrow(queries["claim_chunk"], job_id, owner, lease_seconds)
            row = await conn.fetchrow(queries["get_job"], job_id)
            if row is None:
                return None
            job = Job.from_row(row)
            if taken is not None:
                chunk = ChunkClaim(
                    job.id,
                    taken["seq"],
                    taken["stage"],
                    taken["ord_from"],
                    taken["ord_to"],
                    owner,
                )
                return ClaimOutcome(job=job, chunk=chunk)
            waiting = job.next_attempt_at is not None and job.next_attempt_at > datetime.now(UTC)
            if not job.is_active or waiting or job.claimed_items < job.stage_total:
                return ClaimOutcome(job=job, chunk=None)  # not runnable right now
            if await conn.fetchval(queries["count_running_chunks"], job_id):
                return ClaimOutcome(job=job, chunk=None, busy=True)
            async with conn.transaction():
                locked = Job.from_row(await conn.fetchrow(queries["lock_job"], job_id))
                return ClaimOutcome(job=await self._settle_stage(conn, locked), chunk=None)

    @wrap_unavailable
    async def renew_lease(self, chunk: ChunkClaim, *, lease_seconds: float) -> bool:
        renewed = await self.pool.fetchval(
            queries["renew_lease"], _uuid(chunk.job_id), chunk.seq, chunk.owner, lease_seconds
        )
        return renewed is not None

    @wrap_unavailable
    @wrap_unavailable
    async def held_scores(self, job_id: str, catalog_ids: list[str]) -> dict[str, float]:
        """The best score with which a one-to-one job holds each of ``catalog_ids``."""
        rows = await self.pool.fetch(queries["held_records"], _uuid(job_id), catalog_ids)
        return {r["catalog_id"]: r["score"] for r in rows}

    async def job_item_text(self, job: Job, item_id: str, fields: Sequence[str]) -> str | None:
        """The text of the job's ``fields`` of one of its items, as of the job's items
        version; None if the job lacks it."""
        return await self.pool.fetchval(
            queries["job_item_text"],
            _uuid(job.id),
            item_id,
            _uuid(job.project_id),
            list(fields),
            job.items_version,
        )

    @wrap_unavailable
    async def chunk_items(
        self, chunk: ChunkClaim, job: Job, fields: Sequence[str]
    ) -> list[tuple[str, str]]:
        """The chunk's items with their texts as of the job's items version."""
        rows = await self.pool.fetch(
            queries["chunk_items"],
            _uuid(chunk.job_id),
            chunk.ord_from,
            chunk.ord_to,
            list(fields),
            _uuid(job.project_id),
            chunk.stage,
            job.items_version,
        )
        return [(r["item_id"], r["text"]) for r in rows]

    @wrap_unavailable
    async def chunk_item_ids(self, chunk: ChunkClaim) -> list[str]:
        """The ids of the chunk's items, in order."""
        rows = await self.pool.fetch(
            queries["chunk_item_ids"],
            _uuid(chunk.job_id),
            chunk.ord_from,
            chunk.ord_to,
            chunk.stage,
        )
        return [r["item_id"] for r in rows]

    @wrap_unavailable
    async def versions(self, project_id: str) -> tuple[int, int]:
        """The project's catalog and items versions (each bumped by an upload of its kind)."""
        row = await self.pool.fetchrow(queries["project_versions"], _uuid(project_id))
        return (row["catalog_version"], row["items_version"]) if row else (0, 0)

    async def item_texts(
        self, project_id: str, version: int, fields: Sequence[str]
    ) -> list[tuple[str, str]]:
        """Every item of a project at items ``version`` with the text of the given fields
        (the project's peers)."""
        return await self._texts("item_texts", project_id, version, fields)

    async def catalog_texts(
        self, project_id: str, version: int, fields: Sequence[str]
    ) -> list[tuple[str, str]]:
        """Every catalog record of a project at catalog ``version`` with the text of the
        given fields (the index)."""
        return await self._texts("catalog_texts", project_id, version, fields)

    @wrap_unavailable
    async def _texts(
        self, query: str, project_id: str, version: int, fields: Sequence[str]
    ) -> list[tuple[str, str]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(queries[query], _uuid(project_id), list(fields), version)
        return [(r["record_id"], r["text"]) for r in rows]

    @wrap_unavailable
    @touches_job(lambda chunk, *a, **k: chunk.job_id)
    async def commit_chunk(
        self,
        chunk: ChunkClaim,
        project_id: str,
        outcome: StageOutcome,
        *,
        later_stages_eta: float = 0.0,
        prepare_seconds: float = 0.0,
        prior_rate: float | None = None,
        prior_chunks: float = eta.PRIOR_CHUNKS,
    ) -> Job | None:
        """Commit a chunk's matches, its items' outcomes and the job's progress and usage in
        one transaction; when the chunk ends its stage, queue the next stage or complete the
        job in the same transaction.

        Compare-and-set on the chunk's lease: returns ``None`` (and writes nothing) when
        the driver no longer holds it, or when the job was cancelled meanwhile (its items
        are left to a later job, decided once).
        """
        job_id = _uuid(chunk.job_id)
        matches = outcome.matches
        # not waiting for the disk (see claim_chunk), unless the chunk ends the job
        async with self._tx(durable=False) as conn:
            # the job's row first (as claims lock it), so a cancel cannot slip in between
            row = await conn.fetchrow(queries["lock_job"], job_id)
            if row is None or row["status"] == "cancelled":
                return None
            job = Job.from_row(row)
            stage = await conn.fetchval(
                queries["finish_chunk"],
                job_id,
                chunk.seq,
                chunk.owner,
                chunk.size,
                len(matches),
                round(prepare_seconds * 1000),
            )
            if stage is None:
                return None
            columns = list(zip(*matches, strict=True)) if matches else [[] for _ in range(6)]
            displaced = 0
            # one-to-one, enhanced stage: items that lost their record to a better item go
            # back to the stage's queue to fall back on their next candidate
            lost: list[str] = []  # of this chunk
            displaced_ids: list[str] = []  # of earlier chunks
            if job.config.get("oneToOne"):
                counts = await conn.fetchrow(
                    queries["insert_matches_one_to_one"],
                    job_id,
                    _uuid(project_id),
                    chunk.stage,
                    chunk.seq,
                    *[list(c) for c in columns],
                )
                inserted, displaced = len(counts["inserted"]), len(counts["displaced"])
                if job.stages[chunk.stage - 1] == "enhanced":
                    lost = sorted(set(columns[0]) - set(counts["inserted"]))
                    displaced_ids = list(counts["displaced"])
            else:
                inserted = await conn.fetchval(
                    queries["insert_matches"],
                    job_id,
                    _uuid(project_id),
                    chunk.stage,
                    chunk.seq,
                    *[list(c) for c in columns],
                )
            if inserted:
                await conn.execute(queries["mark_stale_matches"], job_id, list(columns[0]))
            if outcome.review:
                await conn.execute(
                    queries["insert_review_queue"],
                    job_id,
                    _uuid(project_id),
                    *[list(c) for c in zip(*outcome.review, strict=True)],
                )
            if inserted:  # its records' other claims make their queued matches less sure
                await _contest(conn, job_id, _uuid(project_id), columns[1], min_claims=2)
            requeued = 0
            if outcome.requeued or lost:
                requeued = await self._requeue(
                    conn, job, chunk.stage, [*outcome.requeued, *lost], chunk.ord_from, chunk.ord_to
                )
            again = 0  # displaced items of earlier chunks queued again
            if displaced_ids:
                again = await self._requeue(
                    conn, job, chunk.stage, displaced_ids, 0, job.stage_total, after=requeued
                )
            if outcome.failed:
                ids, errors = zip(*outcome.failed, strict=True)
                await conn.execute(
                    queries["fail_items"],
                    job_id,
                    chunk.stage,
                    chunk.ord_from,
                    list(ids),
                    list(errors),
                    chunk.ord_to,
                )
            # a displaced item of an earlier chunk, queued again or left to a later stage,
            # is not finished any more
            decided_unmatched = chunk.size - inserted - len(outcome.failed) - requeued
            finished = inserted + len(outcome.failed)
            if chunk.stage >= len(job.stages):
                finished += decided_unmatched  # no later stage will look at them
                if displaced_ids:
                    finished -= displaced
            else:
                finished -= displaced  # unmatched again: this stage or a later one takes them up
            usage = outcome.usage
            row = await conn.fetchrow(
                queries["advance_job"],
                job_id,
                finished,
                inserted - displaced,
                chunk.size,
                requeued + again,
                len(outcome.failed),
                usage.llm_requests,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cache_hits,
                usage.search_requests,
                usage.cost_usd,
                outcome.wait_seconds,
                outcome.waiting_reason,
            )
            row = await self._set_eta(
                conn,
                Job.from_row(row),
                chunk,
                later_stages_eta,
                outcome.wait_seconds,
                (prior_rate, prior_chunks),
            )
            settled = await self._settle_stage(conn, Job.from_row(row))
            if not settled.is_active:  # a finished job is durable before anyone hears of it
                await conn.execute(queries["durable_commit"])
            return settled

    @staticmethod
    async def _set_eta(
        conn: asyncpg.Connection,
        job: Job,
        chunk: ChunkClaim,
        later_stages_seconds: float,
        wait_seconds: float | None,
        prior: tuple[float | None, float] = (None, 0.0),
    ) -> asyncpg.Record:
        """The job's rate and ETA after ``chunk`` (service/eta.py), recorded on the chunk
        too; the job's row is locked by this commit, so its counts are the latest."""
        rows = await conn.fetch(
            queries["stage_chunk_timings"],
            uuid.UUID(job.id),
            chunk.stage,
            eta.WARMUP_CHUNKS,
            ETA_CHUNKS,
        )
        timings = [eta.ChunkTiming(**dict(r)) for r in rows]
        if len(timings) == 1:
            # a stage's lone first chunk: its span ends at this commit's end, not at the
            # commit's start (finished_at), or its rate leaves the matches insert out
            now = await conn.fetchval(queries["clock_now"])
            timings[0] = dataclasses.replace(timings[0], finished=max(timings[0].finished, now))
        rate = eta.stage_rate(timings, prior_rate=prior[0], prior_chunks=prior[1])
        seconds = eta.eta_seconds(
            job.stage_total - job.stage_processed,
            rate,
            later_stages_seconds=later_stages_seconds,
            wait_seconds=wait_seconds,
        )
        return await conn.fetchrow(
            queries["set_job_eta"], uuid.UUID(job.id), chunk.seq, seconds, rate
        )

    @staticmethod
    async def _requeue(
        conn: asyncpg.Connection,
        job: Job,
        stage: int,
        item_ids: list[str],
        ord_from: int,
        ord_to: int,
        *,
        after: int = 0,
    ) -> int:
        """Put the stage's queued items ``item_ids`` (ords in ``(ord_from, ord_to]``) at the
        end of its queue, ``after`` items already put there by this commit; how many moved."""
        status = await conn.execute(
            queries["requeue_items"],
            uuid.UUID(job.id),
            stage,
            job.stage_total + after,
            item_ids,
            ord_from,
            ord_to,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def _settle_stage(self, conn: asyncpg.Connection, job: Job) -> Job:
        """When every item of the current stage is committed, move on: queue the next stage
        (skipping stages with nothing to do), or complete the job after the last one."""
        while job.status in LIVE_STATUSES and job.stage_processed >= job.stage_total:
            if job.stages[job.current_stage - 1] == "enhanced" and not job.config.get("oneToOne"):
                job = await self._withdraw_contested(conn, job)
            if job.is_last_stage:
                done = await conn.fetchrow(queries["complete_job"], uuid.UUID(job.id))
                return Job.from_row(done) if done else job
            nxt = job.current_stage + 1
            name = job.stages[nxt - 1]
            status = await conn.execute(queries["start_stage"], uuid.UUID(job.id), nxt)
            queued = int(status.rsplit(" ", 1)[-1])
            row = await conn.fetchrow(
                queries["enter_stage"],
                uuid.UUID(job.id),
                nxt,
                STAGE_NAMES[name],
                stage_chunk_size(job.config, name),
                queued,
            )
            job = Job.from_row(row)
        return job

    @staticmethod
    async def _withdraw_contested(conn: asyncpg.Connection, job: Job) -> Job:
        """Withdraw the matches of the job's ending matching stage that are too unlikely
        right beside the others of their record (``contest_matches``), and count them out:
        unmatched now, for a later stage to take up or finished as such."""
        await conn.execute(queries["contest_work_mem"])
        withdrawn = await conn.fetchval(
            queries["contest_matches"],
            uuid.UUID(job.id),
            job.current_stage,
            float(job.config["threshold"]),
            SHARED_CLAIMS_FLOOR,
        )
        if not withdrawn:
            return job
        unfinished = 0 if job.is_last_stage else withdrawn
        row = await conn.fetchrow(
            queries["withdraw_from_counts"], uuid.UUID(job.id), withdrawn, unfinished
        )
        return Job.from_row(row)

    @wrap_unavailable
    async def failed_items(self, job_id: uuid.UUID) -> list[tuple[str, int, str | None]]:
        rows = await self.pool.fetch(queries["failed_items"], job_id)
        return [(r["item_id"], r["stage"], r["error"]) for r in rows]

    @wrap_unavailable
    async def job_chunks(self, job_id: uuid.UUID, *, after: int, limit: int) -> list[ChunkRecord]:
        """The job's chunks after seq ``after``, in order, at most ``limit``."""
        rows = await self.pool.fetch(queries["job_chunks"], job_id, after, limit)
        return [ChunkRecord.from_row(r) for r in rows]

    @wrap_unavailable
    @touches_job(lambda job_id, *a, **k: job_id)
    async def retry_failed_items(self, job_id: uuid.UUID) -> Job | None:
        """Put the job's failed items back in its current stage's queue (job reopened)."""
        async with self._tx() as conn:
            job = Job.from_row(await conn.fetchrow(queries["lock_job"], job_id))
            status = await conn.execute(
                queries["retry_failed_items"], job_id, job.current_stage, job.stage_total
            )
            count = int(status.rsplit(" ", 1)[-1])
            if not count:
                return None
            try:
                row = await conn.fetchrow(queries["reopen_for_failed"], job_id, count)
            except asyncpg.UniqueViolationError as exc:
                raise _active_conflict(job.job_type, None) from exc
            await conn.execute(queries["notify_job"], str(job_id))
            return Job.from_row(row)

    @wrap_unavailable
    async def cached_answers(self, keys: Sequence[str]) -> dict[str, tuple[str | None, float, str]]:
        rows = await self.pool.fetch(queries["get_cached_answers"], list(keys))
        return {r["key"]: (r["catalog_id"], r["confidence"], r["reason"]) for r in rows}

    @wrap_unavailable
    async def cache_answers(self, entries: Mapping[str, tuple[str | None, float, str]]) -> None:
        if not entries:
            return
        keys = list(entries)
        await self.pool.execute(
            queries["put_cached_answers"],
            keys,
            [entries[k][0] for k in keys],
            [float(entries[k][1]) for k in keys],
            [entries[k][2] for k in keys],
        )

    @wrap_unavailable
    @touches_job(lambda chunk, *a, **k: chunk.job_id)
    async def release_chunk(self, chunk: ChunkClaim) -> None:
        await self.pool.execute(
            queries["release_chunk"], _uuid(chunk.job_id), chunk.seq, chunk.owner
        )

    # -- matches -----------------------------------------------------------------------

    @wrap_unavailable
    async def job_matches(
        self, job: Job, *, after_id: int, limit: int, explanations: bool = True
    ) -> list[MatchRow]:
        rows = await self.pool.fetch(
            queries["job_matches_page"],
            _uuid(job.id),
            after_id,
            limit,
            list(job.config.get("itemFields", [])),
            list(job.config.get("catalogFields", [])),
            job.items_version,
            job.catalog_version,
            explanations,
        )
        return [MatchRow.from_row(r) for r in rows]

    # -- review ----------------------------------------------------------------------------

    @wrap_unavailable
    async def review_page(
        self, job: Job, *, after: tuple[float, str] | None, limit: int
    ) -> list[ReviewPair]:
        """A page of the job's review queue, most likely wrong first, after the keyset
        ``after`` (error chance, item id); items decided in the project left out."""
        chance, item = after if after is not None else (2.0, "")
        rows = await self.pool.fetch(
            queries["review_page"],
            _uuid(job.id),
            _uuid(job.project_id),
            limit,
            chance,
            item,
            list(job.config.get("itemFields", [])),
            list(job.config.get("catalogFields", [])),
            job.items_version,
            job.catalog_version,
        )
        return [ReviewPair.from_row(r) for r in rows]

    @wrap_unavailable
    async def review_counts(self, job: Job) -> tuple[int, int]:
        """How many decisions the job queued for review, and how many are decided."""
        row = await self.pool.fetchrow(
            queries["review_counts"], _uuid(job.id), _uuid(job.project_id)
        )
        return int(row["total"]), int(row["decided"])

    @wrap_unavailable
    @touches_job(lambda job, *a, **k: job.id)
    async def apply_decisions(
        self, job: Job, decisions: Sequence[ReviewDecision], *, decided_by: str
    ) -> Job:
        """Store reviewer ``decided_by``'s decisions and apply them to the job's matches,
        all or nothing, under the job's row lock (so that a chunk commit comes wholly before
        or after, and its matches leave decided items alone). Raises
        :class:`ValidationError` naming the items the job lacks or the records the catalog
        lacks (nothing applied)."""
        job_id, project_id = _uuid(job.id), _uuid(job.project_id)
        items = [d.item_id for d in decisions]
        records = sorted({d.catalog_id for d in decisions if d.catalog_id is not None})
        async with self._tx() as conn:
            locked = Job.from_row(await conn.fetchrow(queries["lock_job"], job_id))
            unknown = await conn.fetchrow(
                queries["review_unknown"], job_id, items, records, project_id, job.catalog_version
            )
            if unknown["unknown_items"] or unknown["unknown_records"]:
                raise _unknown_decided(unknown["unknown_items"], unknown["unknown_records"])
            proposed = await conn.fetch(
                queries["record_decisions"],
                job_id,
                project_id,
                decided_by,
                items,
                [d.catalog_id for d in decisions],
                [d.decision for d in decisions],
            )
            matched = [d for d in decisions if d.decision == "match"]
            wrong = [d for d in decisions if d.decision == "no-match" and d.catalog_id]
            gone = await conn.fetchval(
                queries["drop_decided_matches"],
                job_id,
                [d.item_id for d in matched],
                [d.item_id for d in decisions if d.decision == "no-match" and not d.catalog_id],
                [d.item_id for d in wrong],
                [d.catalog_id for d in wrong],
                [d.catalog_id for d in matched],
                bool(job.config.get("oneToOne")),
            )
            added = 0
            if matched:
                added = await conn.fetchval(
                    queries["insert_decided_matches"],
                    job_id,
                    project_id,
                    [d.item_id for d in matched],
                    [d.catalog_id for d in matched],
                    max(locked.current_stage, 1),
                    decided_by,
                )
            # the records that gained or lost a match: their other queued matches re-judged
            touched = {r["proposed_catalog_id"] for r in proposed} | {
                d.catalog_id for d in decisions
            }
            await _contest(conn, job_id, project_id, touched, min_claims=1)
            row = await conn.fetchrow(queries["count_decided_matches"], job_id, added - gone)
            return Job.from_row(row)

    @wrap_unavailable
    async def job_score_histogram(self, job_id: str, *, bins: int) -> list[tuple[float, int]]:
        """The job's machine-scored best candidates as (bin middle score, count)."""
        rows = await self.pool.fetch(queries["job_score_histogram"], _uuid(job_id), bins)
        return [((r["bin"] + 0.5) / bins, r["n"]) for r in rows]

    @wrap_unavailable
    async def refit_calibration(
        self,
        project_id: str,
        fit: Callable[[list[tuple[float, bool | None]]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Store ``fit(labels)`` as the project's calibration, the labels (score, right)
        read under the project's lock: concurrent re-fits store the one of all labels."""
        async with self._tx() as conn:
            await conn.fetchrow(queries["lock_project"], _uuid(project_id))
            rows = await conn.fetch(queries["project_labels"], _uuid(project_id))
            calibration = fit([(r["score"], r["right"]) for r in rows])
            await conn.execute(queries["set_project_calibration"], _uuid(project_id), calibration)
            return calibration

    # -- webhooks --------------------------------------------------------------------------

    @wrap_unavailable
    async def create_webhook(
        self,
        project_id: uuid.UUID,
        url: str,
        events: Sequence[str],
        secret: str,
        *,
        max_webhooks: int,
    ) -> Webhook:
        """A new webhook of the project; QuotaExceeded when it has ``max_webhooks``."""
        async with self._tx() as conn:
            await conn.fetchrow(queries["lock_project"], project_id)
            row = await conn.fetchrow(
                queries["create_webhook"], project_id, url, list(events), secret, max_webhooks
            )
        if row is None:
            raise QuotaExceeded(
                f"a project may have at most {max_webhooks} webhooks; delete one first"
            )
        return Webhook.from_row(row)

    @wrap_unavailable
    async def list_webhooks(self, project_id: uuid.UUID) -> list[Webhook]:
        rows = await self.pool.fetch(queries["list_webhooks"], project_id)
        return [Webhook.from_row(r) for r in rows]

    @wrap_unavailable
    async def get_webhook(self, project_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook | None:
        row = await self.pool.fetchrow(queries["get_webhook"], project_id, webhook_id)
        return Webhook.from_row(row) if row else None

    @wrap_unavailable
    async def delete_webhook(self, project_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
        return (
            await self.pool.fetchval(queries["delete_webhook"], project_id, webhook_id) is not None
        )

    @wrap_unavailable
    async def webhook_deliveries(
        self, webhook_id: uuid.UUID, *, before: int | None, limit: int
    ) -> list[WebhookDelivery]:
        """A webhook's deliveries, newest first, with ids below ``before`` (None: all)."""
        rows = await self.pool.fetch(queries["webhook_deliveries"], webhook_id, before, limit)
        return [WebhookDelivery.from_row(r) for r in rows]

    @wrap_unavailable
    async def claim_webhook_deliveries(
        self, *, owner: str, limit: int, lease_seconds: float
    ) -> list[WebhookAttempt]:
        """Lease up to ``limit`` due deliveries (each its job's oldest pending event for its
        webhook), in event order."""
        rows = await self.pool.fetch(
            queries["claim_webhook_deliveries"], limit, owner, lease_seconds
        )
        return [WebhookAttempt.from_row(r) for r in rows]

    @wrap_unavailable
    async def webhook_delivered(self, delivery_id: int, *, owner: str, status_code: int) -> bool:
        row = await self.pool.fetchval(
            queries["webhook_delivered"], delivery_id, owner, status_code
        )
        return row is not None

    @wrap_unavailable
    async def webhook_attempt_failed(
        self,
        delivery_id: int,
        *,
        owner: str,
        status_code: int | None,
        error: str,
        retry_in_seconds: float,
        give_up_after_seconds: float,
    ) -> str | None:
        """Record a failed attempt; the delivery's status after it (``failed``: given up),
        None when this owner no longer held the lease."""
        return await self.pool.fetchval(
            queries["webhook_attempt_failed"],
            delivery_id,
            owner,
            status_code,
            error,
            retry_in_seconds,
            give_up_after_seconds,
        )

    @wrap_unavailable
    async def next_webhook_attempt_at(self) -> datetime | None:
        return await self.pool.fetchval(queries["next_webhook_attempt_at"])

    @wrap_unavailable
    async def prune_webhook_deliveries(self, *, days_old: float) -> None:
        await self.pool.execute(queries["prune_webhook_deliveries"], days_old)


JOBS_CHANNEL = "chunkmatch_jobs"
WEBHOOKS_CHANNEL = "chunkmatch_webhooks"  # a webhook delivery was queued (migration 012)


async def _contest(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    project_id: uuid.UUID,
    records: Iterable[str | None],
    *,
    min_claims: int,
) -> None:
    """Re-judge job ``job_id``'s queued matches to ``records`` (claimed by at least
    ``min_claims`` items) beside the other matches of their record
    (:func:`matching.review.contested_error_chance`)."""
    wanted = sorted({r for r in records if r is not None})
    if not wanted:
        return
    await conn.execute(queries["plan_for_parameters"])  # planned for these records
    rows = await conn.fetch(
        queries["contested_claims"],
        job_id,
        project_id,
        wanted,
        SHARED_RECORD_ALLOWANCE,
        min_claims,
        MAX_CONTESTED_CLAIMS,
    )
    await conn.execute(queries["reset_plan_cache_mode"])
    if rows:
        await conn.execute(
            queries["set_review_chances"],
            job_id,
            [r["item_id"] for r in rows],
            [r["catalog_id"] for r in rows],
            [r["error_chance"] for r in rows],
        )


def _unknown_decided(items: Sequence[str], records: Sequence[str]) -> ValidationError:
    parts = []
    if items:
        parts.append(f"the job has no item {', '.join(shown(i) for i in items[:5])}")
    if records:
        parts.append(
            f"the project's catalog has no record {', '.join(shown(r) for r in records[:5])}"
        )
    return ValidationError(
        "; ".join(parts) + "; no decision was applied",
        details={"unknownItems": list(items), "unknownRecords": list(records)},
    )


def _active_conflict(job_type: str, existing: uuid.UUID | None) -> Conflict:
    return Conflict(
        f"the project already has a live {job_type!r} job"
        + (f" ({existing})" if existing else "")
        + "; wait for it, or cancel it, before creating another",
        details={"existingJobId": str(existing) if existing else None},
    )


async def _prune_versions(conn: asyncpg.Connection, project_id: uuid.UUID | None) -> None:
    """Forget record versions no job of the project (``None``: any) can see any more."""
    await conn.execute(queries["prune_catalog_versions"], project_id)
    await conn.execute(queries["prune_items_versions"], project_id)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def to_json_text(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))

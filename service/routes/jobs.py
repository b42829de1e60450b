"""Jobs: create, advance one chunk, watch, change status, read matches."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from matching import DEFAULT_CANDIDATES
from service import schemas as S
from service.auth import principal
from service.exceptions import Conflict, NotFound, ValidationError, shown
from service.inputs import body_id, path_id, query_flag, query_int, read_json, read_json_object
from service.models import ACTIVE_STATUSES, LIVE_STATUSES, Job, candidate_json
from service.openapi import operation, query
from service.spreadsheet import MATCH_CSV_COLUMNS, UTF8_BOM, match_csv_row
from service.stages import STAGE_NAMES, resolve_job

CSV_PAGE = 5000
DEFAULT_PRIORITY = 5


def _store(request: Request):
    return request.app.state.store


async def _job(request: Request) -> Job:
    job_id = path_id(request, "job_id", "job")
    job = await _store(request).get_owned_job(job_id, owner=principal(request).scope)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return job


class JobCreate(HTTPEndpoint):
    @operation(
        "Create a job over the project's unmatched items",
        body=S.JOB_CREATE,
        responses={201: S.JOB_ANSWER},
    )
    async def post(self, request: Request) -> JSONResponse:
        body = await read_json_object(
            request,
            allowed={"projectId", "jobType", "config", "priority"},
            required={"projectId", "jobType"},
        )
        priority = body.get("priority", DEFAULT_PRIORITY)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
            raise ValidationError("priority must be an integer from 1 (lowest) to 10 (highest)")
        project_id = body_id(body["projectId"], "projectId")
        store = _store(request)
        project = await store.get_project(project_id, owner=principal(request).scope)
        if project is None:
            raise NotFound(f"no project with id {project_id}")
        stages, config = resolve_job(
            body["jobType"],
            body.get("config"),
            project,
            missing_settings=request.app.state.providers.missing_settings(),
        )
        job = await store.create_job(
            project_id,
            job_type=body["jobType"],
            config=config,
            stages=stages,
            stage_name=STAGE_NAMES[stages[0]],
            chunk_size=config["chunkSize"],
            priority=priority,
            max_attempts=request.app.state.settings.job_max_attempts,
            # a threshold the request sets wins over the project's re-fitted one
            calibrated="threshold" not in (body.get("config") or {}),
        )
        # the index and peers the job needs are built from now on, not by its first chunk
        job = request.app.state.engine.start_preparation(job)
        return JSONResponse({"success": True, "job": job.to_json()}, status_code=201)


class Jobs(HTTPEndpoint):
    @operation(
        "List your jobs, newest first",
        responses={200: S.JOB_LIST},
        params=[
            query("projectId", {"type": "string"}),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
        ],
    )
    async def get(self, request: Request) -> JSONResponse:
        raw = request.query_params.get("projectId")
        project_id = body_id(raw, "projectId") if raw else None
        limit = query_int(request, "limit", 50, minimum=1, maximum=500)
        store = _store(request)
        scope = principal(request).scope
        if project_id is not None and await store.get_project(project_id, owner=scope) is None:
            raise NotFound(f"no project with id {project_id}")
        jobs = await store.list_jobs(project_id, limit=limit, owner=scope)
        return JSONResponse({"success": True, "jobs": [j.to_json() for j in jobs]})


class JobDetail(HTTPEndpoint):
    @operation("A job and its progress", responses={200: S.JOB_ANSWER})
    async def get(self, request: Request) -> Response:
        # the poll every client repeats: from this process's snapshot when it is fresh
        job_id = path_id(request, "job_id", "job")
        snapshot = await request.app.state.notifications.job(str(job_id))
        if snapshot is None or not snapshot.visible_to(principal(request)):
            raise NotFound(f"no job with id {job_id}")
        return Response(
            b'{"success":true,"job":' + snapshot.job_json() + b"}",
            media_type="application/json",
        )

    @operation(
        "Change a job's status by hand (e.g. mark a stuck job failed)",
        body=S.JOB_PATCH,
        responses={200: S.JOB_ANSWER},
    )
    async def patch(self, request: Request) -> JSONResponse:
        """Manual status change, e.g. mark a stuck job failed."""
        body = await read_json_object(
            request, allowed={"status", "error", "completedAt"}, required={"status"}
        )
        status, error = body["status"], body.get("error")
        if status not in ("failed", "cancelled"):
            raise ValidationError("status may be set to 'failed' or 'cancelled'")
        if error is not None and (not isinstance(error, str) or len(error) > 2000):
            raise ValidationError("error must be a string of at most 2000 characters")
        completed_at = body.get("completedAt")
        if completed_at is not None:
            try:
                completed_at = datetime.fromisoformat(str(completed_at).replace("Z", "+00:00"))
            except ValueError:
                raise ValidationError("completedAt must be an ISO 8601 timestamp") from None
            if completed_at.tzinfo is None:
                raise ValidationError("completedAt must include a time zone (e.g. Z)")
        job = await _job(request)
        if completed_at is not None and not job.created_at <= completed_at <= datetime.now(UTC):
            raise ValidationError(
                "completedAt must lie between the job's creation "
                f"({job.created_at.isoformat()}) and now",
                details={"createdAt": job.created_at.isoformat()},
            )
        if job.status == status:
            return JSONResponse({"success": True, "job": job.to_json()})
        return await _transition(
            request, job, status, LIVE_STATUSES, error=error, completed_at=completed_at
        )


class JobProcess(HTTPEndpoint):
    @operation("Advance the job by exactly one chunk", responses={200: S.JOB_ANSWER})
    async def post(self, request: Request) -> JSONResponse:
        await read_json(request, required=False)  # an optional, ignored body
        job = await _job(request)  # 404 unless the caller may see it
        job_id = uuid.UUID(job.id)
        outcome = await request.app.state.engine.process_next_chunk(job_id)
        if outcome is None:
            raise NotFound(f"no job with id {job_id}")
        return JSONResponse(
            {"success": True, "job": outcome.job.to_json(), "message": outcome.message}
        )


async def _transition(
    request: Request,
    job: Job,
    status: str,
    allowed_from: tuple[str, ...],
    *,
    error: str | None = None,
    completed_at: datetime | None = None,
    message: str | None = None,
) -> JSONResponse:
    if job.status not in allowed_from:
        raise Conflict(
            f"job is {job.status}; it can become {status} only from {' or '.join(allowed_from)}",
            details={"status": job.status},
        )
    updated = await _store(request).set_job_status(
        uuid.UUID(job.id),
        status,
        allowed_from=allowed_from,
        error=error,
        completed_at=completed_at,
    )
    if updated is None:  # it changed under us: say what it is now
        updated = await _job(request)
        if updated.status != status:
            raise Conflict(f"job is now {updated.status}", details={"status": updated.status})
        # a concurrent call made the same change: the outcome asked for holds
    body = {"success": True, "job": updated.to_json()}
    if message:
        body["message"] = message
    return JSONResponse(body)


class JobCancel(HTTPEndpoint):
    @operation("Cancel the job", responses={200: S.JOB_ANSWER})
    async def post(self, request: Request) -> JSONResponse:
        """Stop a job for good; takes effect before its next chunk starts."""
        job = await _job(request)
        if job.status == "cancelled":
            return JSONResponse(
                {"success": True, "job": job.to_json(), "message": "Job was already cancelled"}
            )
        return await _transition(request, job, "cancelled", LIVE_STATUSES, message="Job cancelled")


class JobPause(HTTPEndpoint):
    @operation("Pause the job", responses={200: S.JOB_ANSWER})
    async def post(self, request: Request) -> JSONResponse:
        job = await _job(request)
        if job.status == "paused":
            return JSONResponse(
                {"success": True, "job": job.to_json(), "message": "Job was already paused"}
            )
        return await _transition(request, job, "paused", ACTIVE_STATUSES, message="Job paused")


class JobResume(HTTPEndpoint):
    @operation("Resume a paused job", responses={200: S.JOB_ANSWER})
    async def post(self, request: Request) -> JSONResponse:
        job = await _job(request)
        if job.is_active:
            return JSONResponse(
                {"success": True, "job": job.to_json(), "message": f"Job is already {job.status}"}
            )
        target = "processing" if job.started_at else "pending"
        return await _transition(request, job, target, ("paused",), message="Job resumed")


class JobRetry(HTTPEndpoint):
    @operation("Restart a failed job from where it stopped", responses={200: S.JOB_ANSWER})
    async def post(self, request: Request) -> JSONResponse:
        """Restart a failed job from where it stopped (its committed chunks stay done)."""
        job = await _job(request)
        target = "processing" if job.started_at else "pending"
        return await _transition(
            request, job, target, ("failed",), message="Job restarted from where it stopped"
        )


class JobRetryFailed(HTTPEndpoint):
    @operation(
        "Put the job's failed items back in its queue (the job goes on from there)",
        responses={200: S.JOB_ANSWER},
    )
    async def post(self, request: Request) -> JSONResponse:
        job = await _job(request)
        if job.status in ("cancelled", "paused"):
            raise Conflict(f"job is {job.status}; resume or recreate it first")
        updated = await _store(request).retry_failed_items(uuid.UUID(job.id))
        if updated is None:
            raise Conflict("the job has no failed items", details={"failedItems": 0})
        return JSONResponse(
            {
                "success": True,
                "job": updated.to_json(),
                "message": f"{job.failed_items} failed items queued again",
            }
        )


class JobFailedItems(HTTPEndpoint):
    @operation("The job's failed items and their last errors", responses={200: S.FAILED_ITEMS})
    async def get(self, request: Request) -> JSONResponse:
        job = await _job(request)
        rows = await _store(request).failed_items(uuid.UUID(job.id))
        return JSONResponse(
            {
                "success": True,
                "items": [{"itemId": i, "stage": s, "error": e} for i, s, e in rows],
            }
        )


CHUNKS_PAGE = 1000


class JobChunks(HTTPEndpoint):
    @operation(
        "The job's chunks in order: timings, counts and the ETA the job gave after each",
        params=[
            query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
            query("cursor", {"type": "string"}),
        ],
        responses={200: S.JOB_CHUNKS},
    )
    async def get(self, request: Request) -> JSONResponse:
        job = await _job(request)
        limit = query_int(request, "limit", CHUNKS_PAGE, minimum=1, maximum=5000)
        chunks = await _store(request).job_chunks(
            uuid.UUID(job.id), after=_cursor(request), limit=limit
        )
        next_cursor = str(chunks[-1].seq) if len(chunks) == limit else None
        return JSONResponse(
            {
                "success": True,
                "chunks": [c.to_json() for c in chunks],
                "nextCursor": next_cursor,
            }
        )


class JobItemCandidates(HTTPEndpoint):
    @operation(
        "An item's best catalog candidates, scored as the job's fuzzy stage scores them",
        params=[query("k", {"type": "integer", "minimum": 1, "maximum": 50})],
        responses={200: S.CANDIDATES},
    )
    async def get(self, request: Request) -> JSONResponse:
        job = await _job(request)
        item_id = request.path_params["item_id"]
        k = query_int(request, "k", DEFAULT_CANDIDATES, minimum=1, maximum=50)
        found = await request.app.state.engine.candidates(job, item_id, k)
        if found is None:
            raise NotFound(f"job {job.id} has no item {shown(item_id)}")
        results, texts = found
        candidates = [candidate_json(r, texts.get(r.catalog_id)) for r in results]
        return JSONResponse({"success": True, "itemId": item_id, "candidates": candidates})


def _cursor(request: Request) -> int:
    raw = request.query_params.get("cursor")
    if not raw:
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationError("cursor is not valid; pass the nextCursor of a previous page")
    return int(raw)


class JobMatches(HTTPEndpoint):
    @operation(
        "The job's matches: a page of JSON, or all as CSV",
        responses={200: {"application/json": S.MATCHES_PAGE, "text/csv": S.MATCHES_CSV}},
        params=[
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            query("cursor", {"type": "string"}),
            query("format", {"type": "string", "enum": ["json", "csv"]}),
            query(
                "bom",
                {"type": "boolean"},
                "CSV only: start with a UTF-8 byte-order mark, so that spreadsheets read "
                "the file as UTF-8 (default true)",
            ),
        ],
    )
    async def get(self, request: Request):
        job = await _job(request)
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise ValidationError("format must be 'json' or 'csv'")
        bom = query_flag(request, "bom", default=True)
        store = _store(request)
        if fmt == "csv":
            return StreamingResponse(
                _csv_rows(store, job, bom=bom),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="matches-{job.id}.csv"'},
            )
        limit = query_int(request, "limit", 100, minimum=1, maximum=1000)
        rows = await store.job_matches(job, after_id=_cursor(request), limit=limit)
        next_cursor = str(rows[-1].id) if len(rows) == limit else None
        return JSONResponse(
            {"success": True, "matches": [r.to_json() for r in rows], "nextCursor": next_cursor}
        )


async def _csv_rows(store, job: Job, *, bom: bool) -> AsyncIterator[str]:
    """The CSV in pages of :data:`CSV_PAGE` matches, each next page read from PostgreSQL
    while this one is written (100,000 matches: about half the time)."""
    out = io.StringIO()
    if bom:
        out.write(UTF8_BOM)
    writer = csv.writer(out)
    writer.writerow(MATCH_CSV_COLUMNS)

    def page(after: int) -> asyncio.Task:
        return asyncio.ensure_future(
            store.job_matches(job, after_id=after, limit=CSV_PAGE, explanations=False)
        )

    pending: asyncio.Task | None = page(0)
    try:
        while pending is not None:
            rows = await pending
            pending = page(rows[-1].id) if len(rows) == CSV_PAGE else None
            for r in rows:
                writer.writerow(
                    match_csv_row(
                        r.item_id,
                        r.item_text,
                        r.catalog_id,
                        r.catalog_text,
                        r.score,
                        r.method,
                        r.reason,
                        reviewed=r.reviewed,
                    )
                )
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    finally:
        if pending is not None:  # the client went away
            pending.cancel()

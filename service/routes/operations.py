"""Routes for operators: the cron driver, queue status, retention."""

from __future__ import annotations

import hmac

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse

from service import schemas as S
from service.auth import principal
from service.drivers import advance_runnable_jobs
from service.exceptions import Forbidden, Unauthorized, ValidationError
from service.inputs import read_json, read_json_object
from service.models import JOB_STATUSES
from service.openapi import operation

DEFAULT_CRON_MAX_JOBS = 10
DEFAULT_CRON_TIMEOUT_MS = 25_000
MAX_CRON_TIMEOUT_MS = 300_000


def _check_cron_secret(request: Request) -> None:
    secret = request.app.state.settings.cron_secret
    if secret is None:
        raise Forbidden("the cron route is disabled: set CRON_SECRET (at least 32 characters)")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), secret.encode()
    ):
        raise Unauthorized("send Authorization: Bearer $CRON_SECRET")


def _int_field(body: dict, name: str, default: int, minimum: int, maximum: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be an integer from {minimum} to {maximum}")
    return value


class JobsCron(HTTPEndpoint):
    @operation(
        "Advance runnable jobs by priority within a time budget (cron)",
        body=S.CRON_REQUEST,
        body_required=False,
        responses={200: S.CRON_ANSWER},
        security=[{"cronSecret": []}],
    )
    async def post(self, request: Request) -> JSONResponse:
        """Advance runnable jobs by priority within a time budget (for an external cron)."""
        _check_cron_secret(request)
        body = await read_json(request, required=False)
        if not isinstance(body, dict):
            raise ValidationError("the body must be a JSON object")
        extra = sorted(set(body) - {"maxJobs", "timeout"})
        if extra:
            raise ValidationError(f"unknown field(s) {extra}; allowed: ['maxJobs', 'timeout']")
        max_jobs = _int_field(body, "maxJobs", DEFAULT_CRON_MAX_JOBS, 1, 1000)
        timeout_ms = _int_field(body, "timeout", DEFAULT_CRON_TIMEOUT_MS, 1, MAX_CRON_TIMEOUT_MS)
        state = request.app.state
        report = await advance_runnable_jobs(
            state.engine, state.store, max_jobs=max_jobs, budget_seconds=timeout_ms / 1000
        )
        retention = state.settings.retention_days
        body = report.to_json()
        if retention:
            body["deletedJobs"] = await state.store.delete_finished_jobs(days_old=retention)
        return JSONResponse(body)


class JobsStatus(HTTPEndpoint):
    @operation(
        "Counts of your jobs by status, oldest pending age, success rate, average duration",
        responses={200: S.STATUS_ANSWER},
    )
    async def get(self, request: Request) -> JSONResponse:
        summary = await request.app.state.store.jobs_summary(owner=principal(request).scope)
        counts = {status: 0 for status in JOB_STATUSES} | (summary["counts"] or {})
        return JSONResponse(
            {
                "success": True,
                "counts": counts,
                "oldestPendingSeconds": summary["oldest_pending_seconds"],
                "successRate": summary["success_rate"],
                "averageDurationSeconds": summary["average_duration_seconds"],
            }
        )


class JobsCleanup(HTTPEndpoint):
    @operation(
        "Remove your finished jobs older than daysOld days",
        body=S.CLEANUP_REQUEST,
        responses={200: S.CLEANUP_ANSWER},
    )
    async def post(self, request: Request) -> JSONResponse:
        """Remove finished jobs (with their chunks and matches) older than ``daysOld`` days."""
        body = await read_json_object(request, allowed={"daysOld"}, required=set())
        days = body.get("daysOld", request.app.state.settings.retention_days)
        if days is None:
            raise ValidationError("daysOld is required (no JOB_RETENTION_DAYS is configured)")
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 <= days <= 36500:
            raise ValidationError("daysOld must be a number of days from 0 to 36500")
        deleted = await request.app.state.store.delete_finished_jobs(
            days_old=float(days), owner=principal(request).scope
        )
        return JSONResponse({"success": True, "deleted": deleted, "daysOld": days})

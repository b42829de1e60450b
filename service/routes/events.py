"""A job's live events (Server-Sent Events), and the tickets browsers open them with."""

from __future__ import annotations

import re
import uuid

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse

from service import schemas as S
from service.auth import principal
from service.events import EventStream, job_frames
from service.exceptions import NotFound, Unauthorized, ValidationError
from service.inputs import path_id, read_json
from service.openapi import operation
from service.routes.jobs import _job

TICKET_SECONDS = 60.0  # a ticket must be used to connect within this long
_VERSION = re.compile(r"^\d{1,18}$")

LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": r"^\d{1,18}$"},
    "description": "the id of the last event seen: nothing as old or older is sent again",
}


def _seen_version(request: Request) -> int | None:
    raw = request.headers.get("last-event-id")
    if raw is None or raw.strip() == "":
        return None
    if not _VERSION.match(raw.strip()):
        raise ValidationError("Last-Event-ID must be the id of an event this stream sent")
    return int(raw)


class JobEvents(HTTPEndpoint):
    @operation(
        "The job's progress, pushed as Server-Sent Events until it finishes",
        params=[LAST_EVENT_ID],
        responses={200: {"text/event-stream": S.JOB_EVENTS}},
        security=[{"token": []}, {"eventsTicket": []}],
    )
    async def get(self, request: Request) -> EventStream:
        job_id = str(path_id(request, "job_id", "job"))
        seen = _seen_version(request)
        notifications = request.app.state.notifications
        # before reading: no change falls in between
        sub = notifications.subscribe(job_id, token_hash=request.state.token_hash)
        try:
            snapshot = await notifications.job(job_id)
            if snapshot is None or not snapshot.visible_to(principal(request)):
                raise NotFound(f"no job with id {job_id}")
        except BaseException:
            notifications.unsubscribe(sub)
            raise
        frames = job_frames(
            notifications,
            sub,
            snapshot,
            seen_version=seen,
            keepalive_seconds=request.app.state.settings.sse_keepalive_seconds,
        )
        return EventStream(frames)


class JobEventsTicket(HTTPEndpoint):
    @operation(
        "A short-lived ticket to open this job's events where no header can be sent "
        "(a browser's EventSource)",
        responses={200: S.EVENTS_TICKET},
    )
    async def post(self, request: Request) -> JSONResponse:
        await read_json(request, required=False)  # an optional, ignored body
        job = await _job(request)  # 404 unless the caller may see it
        token = request.state.bearer_token
        if token is None:  # tickets are made with a token, never with another ticket
            raise Unauthorized("a ticket is made with an API token")
        ticket, expires_at = await request.app.state.store.create_event_ticket(
            uuid.UUID(job.id), token, ttl_seconds=TICKET_SECONDS
        )
        return JSONResponse(
            {
                "success": True,
                "ticket": ticket,
                "expiresAt": expires_at.isoformat().replace("+00:00", "Z"),
            }
        )

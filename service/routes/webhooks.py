"""A project's webhooks (Standard Webhooks 1.0) and their deliveries."""

from __future__ import annotations

import uuid

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import schemas as S
from service.exceptions import NotFound, ValidationError, shown
from service.inputs import path_id, query_int, read_json_object
from service.models import WEBHOOK_EVENT_TYPES
from service.openapi import operation, query
from service.routes.projects import owned_project
from service.webhooks import check_url, new_secret

MAX_WEBHOOKS_PER_PROJECT = 20


def _store(request: Request):
    return request.app.state.store


def _events(value: object) -> list[str]:
    """The event types asked for: a non-empty list of known ones, each once."""
    rule = {"rule": "events"}
    if not isinstance(value, list) or not value:
        raise ValidationError(
            f"events must be a non-empty list of {list(WEBHOOK_EVENT_TYPES)}", details=rule
        )
    unknown = [e for e in value if e not in WEBHOOK_EVENT_TYPES]
    if unknown:
        raise ValidationError(
            f"unknown event type(s) {shown(unknown)}; known: {list(WEBHOOK_EVENT_TYPES)}",
            details=rule,
        )
    if len(set(value)) != len(value):
        raise ValidationError("events must name each event type once", details=rule)
    return list(value)


class Webhooks(HTTPEndpoint):
    @operation("The project's webhooks (never their secrets)", responses={200: S.WEBHOOK_LIST})
    async def get(self, request: Request) -> JSONResponse:
        project_id = await owned_project(request)
        hooks = await _store(request).list_webhooks(project_id)
        return JSONResponse({"success": True, "webhooks": [h.to_json() for h in hooks]})

    @operation(
        "Register a webhook: job events are POSTed to its URL, signed (Standard Webhooks); "
        "the answer is the only one that shows its secret",
        body=S.WEBHOOK_CREATE,
        responses={201: S.WEBHOOK_CREATED},
        callbacks=S.WEBHOOK_CALLBACKS,
    )
    async def post(self, request: Request) -> JSONResponse:
        project_id = await owned_project(request)
        body = await read_json_object(
            request, allowed={"url", "events"}, required={"url", "events"}
        )
        events = _events(body["events"])
        url = await check_url(
            body["url"], allow_private=request.app.state.settings.webhook_allow_private
        )
        secret = new_secret()
        hook = await _store(request).create_webhook(
            project_id, url, events, secret, max_webhooks=MAX_WEBHOOKS_PER_PROJECT
        )
        return JSONResponse(
            {"success": True, "webhook": {**hook.to_json(), "secret": secret}}, status_code=201
        )


async def _owned_webhook(request: Request) -> tuple[uuid.UUID, uuid.UUID]:
    project_id = await owned_project(request)
    webhook_id = path_id(request, "webhook_id", "webhook")
    if await _store(request).get_webhook(project_id, webhook_id) is None:
        raise NotFound(f"no webhook with id {webhook_id} in project {project_id}")
    return project_id, webhook_id


class WebhookDetail(HTTPEndpoint):
    @operation("Remove a webhook; its pending deliveries are not sent", responses={204: None})
    async def delete(self, request: Request) -> Response:
        project_id, webhook_id = await _owned_webhook(request)
        if not await _store(request).delete_webhook(project_id, webhook_id):
            raise NotFound(f"no webhook with id {webhook_id} in project {project_id}")
        return Response(status_code=204)


class WebhookDeliveries(HTTPEndpoint):
    @operation(
        "A webhook's deliveries, newest first: attempts, status code, error, next attempt",
        responses={200: S.WEBHOOK_DELIVERIES},
        params=[
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            query(
                "before",
                {"type": "integer", "minimum": 1},
                "only deliveries with smaller ids (the previous page's nextBefore)",
            ),
        ],
    )
    async def get(self, request: Request) -> JSONResponse:
        _, webhook_id = await _owned_webhook(request)
        limit = query_int(request, "limit", 100, minimum=1, maximum=1000)
        before = query_int(request, "before", 0, minimum=1, maximum=2**63 - 1) or None
        rows = await _store(request).webhook_deliveries(webhook_id, before=before, limit=limit)
        return JSONResponse(
            {
                "success": True,
                "deliveries": [d.to_json() for d in rows],
                "nextBefore": rows[-1].id if len(rows) == limit else None,
            }
        )

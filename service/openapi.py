"""``GET /openapi.json``, generated from the routes and the schemas their handlers carry.

A handler says what it takes and answers with :func:`operation`; the generator walks the
app's routes, so a route without a description, or a description without a route, cannot
drift apart unnoticed (a test checks that every API route is described).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.schemas import COMPONENTS, Schema, ref

F = Callable[..., Any]

_PATH_PARAM = re.compile(r"{(\w+)}")


def query(name: str, schema: Schema, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def operation(
    summary: str,
    *,
    responses: dict[int, Schema | dict[str, Schema] | None],
    body: Schema | dict[str, Schema] | None = None,
    body_required: bool = True,
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
    security: list[dict[str, list[str]]] | None = None,
    callbacks: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """Describe a handler: its body (one schema, or one per content type), answers, and
    the requests it leads the service to send (OpenAPI callbacks: webhooks)."""

    def mark(fn: F) -> F:
        fn.__openapi__ = {  # type: ignore[attr-defined]
            "summary": summary,
            "responses": responses,
            "body": body,
            "body_required": body_required,
            "params": params or [],
            "public": public,
            "security": security,
            "callbacks": callbacks,
        }
        return fn

    return mark


def _content(schema: Schema | dict[str, Schema]) -> dict[str, Any]:
    if any("/" in key for key in schema):
        return {media: {"schema": s} for media, s in schema.items()}
    return {"application/json": {"schema": schema}}


def build_spec(routes: list[Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in routes:
        if not isinstance(route, Route) or not inspect.isclass(route.endpoint):
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            meta = getattr(getattr(route.endpoint, method, None), "__openapi__", None)
            if meta is None:
                continue
            op: dict[str, Any] = {
                "summary": meta["summary"],
                "operationId": f"{method}_{route.endpoint.__name__}",
                "parameters": [
                    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in _PATH_PARAM.findall(route.path)
                ]
                + meta["params"],
                "responses": {
                    str(status): {"description": f"HTTP {status}"}
                    | ({"content": _content(s)} if s is not None else {})
                    for status, s in meta["responses"].items()
                },
            }
            op["responses"]["default"] = {
                "description": "an error: 4xx for bad input, 401 without a valid token, 403 "
                "over a quota, 404 for what does not exist or is not yours, 429 (with "
                "Retry-After) over the token's request rate, 503 (with Retry-After) while the "
                "database is unavailable",
                "content": {"application/json": {"schema": ref("Error")}},
            }
            if meta["body"] is not None:
                op["requestBody"] = {
                    "required": meta["body_required"],
                    "content": _content(meta["body"]),
                }
            if meta["callbacks"] is not None:
                op["callbacks"] = meta["callbacks"]
            if meta["security"] is not None:
                op["security"] = meta["security"]
            elif meta["public"]:
                op["security"] = []
            paths.setdefault(route.path, {})[method] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "chunkmatch",
            "version": "1",
            "description": "Match items against a catalog as chunked, resumable jobs.",
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API token (`chunkmatch token create`)",
                },
                "eventsTicket": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "ticket",
                    "description": "a ticket from POST /api/jobs/{job_id}/events-ticket, for "
                    "that job's GET /api/jobs/{job_id}/events only (browsers' EventSource)",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "CHUNKMATCH_METRICS_TOKEN, for GET /metrics only (an "
                    "admin token works there too)",
                },
                "cronSecret": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "CRON_SECRET, for POST /api/jobs/process only",
                },
            },
        },
        "security": [{"token": []}],
    }


async def openapi_document(request: Request) -> JSONResponse:
    app = request.app
    spec = getattr(app.state, "openapi", None)
    if spec is None:
        spec = app.state.openapi = build_spec(app.routes)
    return JSONResponse(spec)

"""Where errors become HTTP: one mapping for the whole app, one JSON shape for every error.

``{"success": false, "error": {"code": ..., "message": ..., "details": ...}}``
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from service.exceptions import (
    ChunkmatchError,
    DatabaseUnavailable,
    TooManyRequests,
    Unauthorized,
    shown,
)

logger = logging.getLogger("chunkmatch.http")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    408: "request_timeout",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "service_unavailable",
}


def error_response(
    status: int, code: str, message: str, *, details: Any = None, headers: dict | None = None
) -> JSONResponse:
    body = {"success": False, "error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


async def chunkmatch_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChunkmatchError)
    headers = None
    if isinstance(exc, DatabaseUnavailable):
        headers = {"Retry-After": str(request.app.state.settings.db_retry_after_seconds)}
        logger.warning("database unavailable: %s", exc.__cause__)
    elif isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="chunkmatch"'}
    elif exc.status >= 500:
        logger.error("%s: %s", type(exc).__name__, exc.message)
    return error_response(exc.status, exc.code, exc.message, details=exc.details, headers=headers)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {shown(request.url.path)}"
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def client_disconnected(request: Request, exc: Exception) -> JSONResponse:
    """The client went away mid-request (e.g. a cancelled upload): worth one line, no trace."""
    client = request.client.host if request.client else "?"
    logger.warning(
        "client %s disconnected before sending the whole body of %s %s",
        client,
        request.method,
        request.url.path,
    )
    return error_response(400, "bad_request", "the client disconnected")


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; the server log has details")


EXCEPTION_HANDLERS = {
    ChunkmatchError: chunkmatch_error,
    HTTPException: http_error,
    ClientDisconnect: client_disconnected,
    Exception: unexpected_error,
}

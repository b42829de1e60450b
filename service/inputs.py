"""Request reading shared by the routes: bounded bodies, JSON, ids and query numbers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request

from service.exceptions import BadRequest, NotFound, PayloadTooLarge, ValidationError


async def read_body(request: Request) -> bytes:
    limit = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; this server accepts up to {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than this server's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, required: bool = True) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        if required:
            raise BadRequest("the request body is empty; expected a JSON object")
        return {}
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            details={"line": exc.lineno, "column": exc.colno},
        ) from None


async def read_json_object(request: Request, *, allowed: set[str], required: set[str]) -> dict:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    extra = sorted(set(body) - allowed)
    if extra:
        raise ValidationError(f"unknown field(s) {extra}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(body))
    if missing:
        raise ValidationError(f"missing field(s) {missing}")
    return body


def path_id(request: Request, name: str, what: str) -> uuid.UUID:
    raw = request.path_params[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} with id {raw!r}") from None


def body_id(value: Any, field: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string id")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError(f"{field} {value!r} is not a valid id") from None


def query_int(request: Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"query parameter {name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ValidationError(f"query parameter {name} must be from {minimum} to {maximum}")
    return value

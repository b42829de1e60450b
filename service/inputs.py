"""Request reading shared by the routes: bounded bodies, JSON, ids and query numbers."""

from __future__ import annotations

import asyncio
import io
import json
import math
import uuid
from typing import Any

from starlette.requests import Request

from service.exceptions import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationError,
    shown,
)

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON body may have (records are flat)."""


class _Unreadable(ValueError):
    """A JSON value Python would read but nothing after it can use."""


def _no_constant(name: str) -> Any:
    raise _Unreadable(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Unreadable(f"the number {shown(text)} is out of range")
    return value


def _depth_problem(value: Any) -> str | None:
    """Iteratively (no recursion to exhaust), whether ``value`` nests too deeply."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"the JSON nests deeper than {MAX_JSON_DEPTH} levels"
            stack.extend((child, depth + 1) for child in children)
    return None


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, finite numbers, bounded integers and nesting; every
    problem is a :class:`BadRequest` (400), never a crash later on."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            details={"line": exc.lineno, "column": exc.colno},
        ) from None
    except _Unreadable as exc:
        raise BadRequest(f"unreadable JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4,300 digits)
        raise BadRequest(f"unreadable JSON: {shown(str(exc))}") from None
    except RecursionError:
        raise BadRequest(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    problem = _depth_problem(value)
    if problem:
        raise BadRequest(problem)
    return value


def is_json_media_type(content_type: str) -> bool:
    return content_type in ("", "application/json") or content_type.endswith("+json")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body_buffer(request: Request) -> io.BytesIO:
    """The whole body, bounded by the size limit, each part due within the body timeout."""
    settings = request.app.state.settings
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; this server accepts up to {limit}")
    buffer = io.BytesIO()
    parts = request.stream()
    while True:
        try:
            async with asyncio.timeout(settings.body_timeout_seconds):
                chunk = await anext(parts)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise RequestTimeout(
                f"no part of the request body arrived for {settings.body_timeout_seconds:g} "
                "seconds; send the whole body at once"
            ) from None
        if buffer.tell() + len(chunk) > limit:
            raise PayloadTooLarge(f"the body is larger than this server's limit of {limit} bytes")
        buffer.write(chunk)
    buffer.seek(0)
    return buffer


async def read_body(request: Request) -> bytes:
    return (await read_body_buffer(request)).getvalue()


async def read_json(request: Request, *, required: bool = True) -> Any:
    content_type = media_type(request)
    raw = await read_body(request)
    if not raw.strip():
        if required:
            raise BadRequest("the request body is empty; expected a JSON object")
        return {}
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {shown(content_type)}: send application/json"
        )
    return parse_json(raw)


async def read_json_object(request: Request, *, allowed: set[str], required: set[str]) -> dict:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    extra = sorted(set(body) - allowed)
    if extra:
        raise ValidationError(f"unknown field(s) {shown(extra)}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(body))
    if missing:
        raise ValidationError(f"missing field(s) {missing}")
    return body


def path_id(request: Request, name: str, what: str) -> uuid.UUID:
    raw = request.path_params[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} with id {shown(raw)}") from None


def body_id(value: Any, field: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string id")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError(f"{field} {shown(value)} is not a valid id") from None


def query_flag(request: Request, name: str, *, default: bool) -> bool:
    """A ``true``/``false`` query parameter."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in ("true", "false"):
        raise ValidationError(f"query parameter {name} must be true or false, got {shown(raw)}")
    return raw == "true"


def query_int(request: Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            f"query parameter {name} must be an integer, got {shown(raw)}"
        ) from None
    if not minimum <= value <= maximum:
        raise ValidationError(f"query parameter {name} must be from {minimum} to {maximum}")
    return value

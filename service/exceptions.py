"""Every error chunkmatch's service raises on purpose.

Each class's docstring is its default message; ``code`` and ``status`` say how the one
handler in :mod:`service.errors` turns it into an HTTP answer.
"""

from __future__ import annotations

from typing import Any

MAX_QUOTED_CHARS = 200
"""How much of a client's input an error message quotes back."""


def shown(value: Any, *, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters: a 10 MB input is
    not echoed back.

    >>> shown("x" * 1000, limit=12)
    "'xxxxxxxxxx… (1,002 characters)"
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


class ChunkmatchError(Exception):
    """Something went wrong in chunkmatch."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
        super().__init__(self.message)


class ConfigurationError(ChunkmatchError):
    """The service is misconfigured."""

    code = "configuration_error"


class ValidationError(ChunkmatchError):
    """The request is not valid."""

    code = "validation_error"
    status = 422


class DuplicateRecordId(ValidationError):
    """Two records of one upload have the same id."""

    def __init__(self, record_id: str, line: int, first_line: int, *, word: str = "line") -> None:
        super().__init__(
            f"duplicate id {shown(record_id)}: {word} {line} repeats {word} {first_line}",
            details={"line": line, "firstLine": first_line},
        )


class BadRequest(ChunkmatchError):
    """The request body could not be read."""

    code = "bad_request"
    status = 400


class PayloadTooLarge(ChunkmatchError):
    """The request body is larger than this server accepts."""

    code = "payload_too_large"
    status = 413


class RequestTimeout(ChunkmatchError):
    """The request body did not arrive in time."""

    code = "request_timeout"
    status = 408


class UnsupportedMediaType(ChunkmatchError):
    """The request body's content type is not supported here."""

    code = "unsupported_media_type"
    status = 415


class NotFound(ChunkmatchError):
    """No such resource."""

    code = "not_found"
    status = 404


class Conflict(ChunkmatchError):
    """The request conflicts with the resource's current state."""

    code = "conflict"
    status = 409


class DatabaseUnavailable(ChunkmatchError):
    """The database is unavailable; retry shortly."""

    code = "database_unavailable"
    status = 503


class TooManyRequests(ChunkmatchError):
    """Too many requests with this token; retry after a moment."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message, details={"retryAfter": retry_after})
        self.retry_after = retry_after


class QuotaExceeded(ChunkmatchError):
    """This owner's quota does not allow that."""

    code = "quota_exceeded"
    status = 403


class Unauthorized(ChunkmatchError):
    """Authentication is required."""

    code = "unauthorized"
    status = 401


class Forbidden(ChunkmatchError):
    """This is not allowed here."""

    code = "forbidden"
    status = 403

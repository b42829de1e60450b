"""Bearer-token authentication for every ``/api`` route but the health check and the cron
route (which takes ``CRON_SECRET`` instead). Tokens are looked up by hash and remembered
for a few seconds per process (:meth:`Notifications.principal`); a revocation is pushed by
NOTIFY, so a revoked token stops working everywhere at once.

A job's event stream also takes ``?ticket=`` (browsers' EventSource sends no header): a
short-lived ticket made for that one job (``POST /api/jobs/{id}/events-ticket``), accepted
on that route alone.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid

import token_bucket
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import chunkmatch_error
from service.exceptions import ChunkmatchError, TooManyRequests, Unauthorized
from service.tokens import Principal, token_hash

PUBLIC_API_PATHS = frozenset({"/api/health", "/api/jobs/process"})
MAX_TOKEN_LENGTH = 200
EVENTS_PATH = re.compile(r"^/api/jobs/([^/]+)/events$")


def principal(request: Request) -> Principal:
    """Who is calling (set by :class:`TokenAuth` for every protected route)."""
    return request.state.principal


class TokenAuth:
    """Authenticates, then rate-limits per token: a bucket of ``burst`` requests refilled
    at ``rate`` per second (in this process; 0 turns it off)."""

    def __init__(self, app: ASGIApp, *, rate: float = 0.0, burst: int = 1) -> None:
        self.app = app
        self.limiter = (
            token_bucket.Limiter(rate, burst, token_bucket.MemoryStorage()) if rate else None
        )
        self.retry_after = max(1, math.ceil(1 / rate)) if rate else 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path in PUBLIC_API_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            await self._authenticate(request)
            if self.limiter is not None and not self.limiter.consume(_bucket_key(request)):
                raise TooManyRequests(
                    "too many requests with this token; slow down and retry after "
                    f"{self.retry_after} s",
                    retry_after=self.retry_after,
                )
        except ChunkmatchError as exc:
            await (await chunkmatch_error(request, exc))(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, request: Request) -> Principal:
        state = request.scope.setdefault("state", {})
        state["bearer_token"] = None
        header = request.headers.get("authorization")
        if not header:
            ticket = request.query_params.get("ticket")
            events = EVENTS_PATH.match(request.url.path)
            if ticket is not None and events is not None and request.method == "GET":
                who, state["token_hash"] = await _ticket_principal(request, ticket, events[1])
                state["principal"] = who
                return who
            raise Unauthorized(
                "an API token is required: send Authorization: Bearer <token> "
                "(create one with `chunkmatch token create --owner NAME`)"
            )
        token = bearer_token(header)
        who = await token_principal(request, token)
        state["principal"], state["bearer_token"] = who, token
        state["token_hash"] = token_hash(token)
        return who


def bearer_token(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (Unauthorized if malformed)."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    return token


async def token_principal(request: Request, token: str) -> Principal:
    """Whose API token ``token`` is (remembered briefly by the app's listener, when it has
    one); Unauthorized when it is unknown or revoked."""
    notifications = getattr(request.app.state, "notifications", None)
    if notifications is not None:
        who = await notifications.principal(token)
    else:
        who = await request.app.state.store.principal_for(token)
    if who is None:
        raise Unauthorized("the API token is not valid (unknown or revoked)")
    return who


async def _ticket_principal(
    request: Request, ticket: str, raw_job_id: str
) -> tuple[Principal, str]:
    refused = Unauthorized(
        "the events ticket is not valid for this job (unknown, expired, used for another "
        "job, or its token was revoked): ask POST /api/jobs/{id}/events-ticket for a new one"
    )
    if not ticket or len(ticket) > MAX_TOKEN_LENGTH:
        raise refused
    try:
        job_id = uuid.UUID(raw_job_id)
    except ValueError:
        raise refused from None
    found = await request.app.state.store.ticket_principal(ticket, job_id)
    if found is None:
        raise refused
    return found


def _bucket_key(request: Request) -> bytes:
    # a digest, so that no token is kept in memory longer than its request
    secret = request.headers.get("authorization") or request.query_params.get("ticket", "")
    return hashlib.sha256(secret.encode()).digest()

"""Bearer-token authentication for every ``/api`` route but the health check and the cron
route (which takes ``CRON_SECRET`` instead). Tokens are looked up by hash on each request,
so a revoked token stops working at once.
"""

from __future__ import annotations

import hashlib
import math

import token_bucket
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import chunkmatch_error
from service.exceptions import ChunkmatchError, TooManyRequests, Unauthorized
from service.tokens import Principal

PUBLIC_API_PATHS = frozenset({"/api/health", "/api/jobs/process"})
MAX_TOKEN_LENGTH = 200


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
            who = await self._authenticate(request)
            if self.limiter is not None and not self.limiter.consume(_bucket_key(request)):
                raise TooManyRequests(
                    "too many requests with this token; slow down and retry after "
                    f"{self.retry_after} s",
                    retry_after=self.retry_after,
                )
        except ChunkmatchError as exc:
            response = await chunkmatch_error(request, exc)
            if isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = 'Bearer realm="chunkmatch"'
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)

    async def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthorized(
                "an API token is required: send Authorization: Bearer <token> "
                "(create one with `chunkmatch token create --owner NAME`)"
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
        who = await request.app.state.store.principal_for(token)
        if who is None:
            raise Unauthorized("the API token is not valid (unknown or revoked)")
        return who


def _bucket_key(request: Request) -> bytes:
    # a digest, so that no token is kept in memory longer than its request
    return hashlib.sha256(request.headers.get("authorization", "").encode()).digest()

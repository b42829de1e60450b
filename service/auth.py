"""Bearer-token authentication for every ``/api`` route but the health check and the cron
route (which takes ``CRON_SECRET`` instead). Tokens are looked up by hash on each request,
so a revoked token stops working at once.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import chunkmatch_error
from service.exceptions import ChunkmatchError, Unauthorized
from service.tokens import Principal

PUBLIC_API_PATHS = frozenset({"/api/health", "/api/jobs/process"})
MAX_TOKEN_LENGTH = 200


def principal(request: Request) -> Principal:
    """Who is calling (set by :class:`TokenAuth` for every protected route)."""
    return request.state.principal


class TokenAuth:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path in PUBLIC_API_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            who = await self._authenticate(request)
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

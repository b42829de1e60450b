"""Health: is the service up, and can it reach its database?"""

from __future__ import annotations

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse


class Health(HTTPEndpoint):
    async def get(self, request: Request) -> JSONResponse:
        """200 when the database answers; 503 with Retry-After (from the error handler) when not."""
        await request.app.state.store.ping()
        return JSONResponse({"success": True, "status": "ok", "database": "ok"})

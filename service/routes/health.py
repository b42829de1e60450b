"""Health: is the service up, and can it reach its database?"""

from __future__ import annotations

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse

from service import schemas as S
from service.openapi import operation


class Health(HTTPEndpoint):
    @operation("Service and database health", responses={200: S.COMPONENTS["Health"]}, public=True)
    async def get(self, request: Request) -> JSONResponse:
        """200 when the database answers; 503 with Retry-After (from the error handler) when not."""
        await request.app.state.store.ping()
        return JSONResponse({"success": True, "status": "ok", "database": "ok"})

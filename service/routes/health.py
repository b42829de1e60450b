"""Health: is the service up, and can it reach its database?"""

from __future__ import annotations

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.errors import error_response
from service.exceptions import DatabaseUnavailable


class Health(HTTPEndpoint):
    async def get(self, request: Request) -> JSONResponse:
        try:
            await request.app.state.store.ping()
        except DatabaseUnavailable as exc:
            return error_response(
                503,
                exc.code,
                "the database is unreachable",
                details={"database": "unavailable"},
                headers={"Retry-After": str(request.app.state.settings.db_retry_after_seconds)},
            )
        return JSONResponse({"success": True, "status": "ok", "database": "ok"})

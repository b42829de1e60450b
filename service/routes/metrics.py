"""``GET /metrics``: this process's Prometheus metrics, for an admin token or
``CHUNKMATCH_METRICS_TOKEN``. Served by ``chunkmatch serve`` and, with ``--metrics-port``,
by ``chunkmatch worker`` (service/metrics_server.py)."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Mapping

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response

from service import metrics
from service.auth import bearer_token, token_principal
from service.exceptions import DatabaseUnavailable, Forbidden, Unauthorized
from service.openapi import operation
from service.store import Store

JOB_COUNTS_TTL_SECONDS = 1.0
"""How long a process reuses the jobs gauge's counts: scrapes of several Prometheus
servers (or a curl loop) cost PostgreSQL at most one query a second."""


class JobCounts:
    """The jobs by status, read at most once per :data:`JOB_COUNTS_TTL_SECONDS`; scrapes
    that arrive together share one query."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._counts: Mapping[str, int] | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> Mapping[str, int] | None:
        """The counts, or None while the database is unavailable (the gauge is left out,
        the process's own counters are still served)."""
        async with self._lock:
            if time.monotonic() - self._read_at >= JOB_COUNTS_TTL_SECONDS:
                try:
                    self._counts = await self.store.job_counts()
                except DatabaseUnavailable:
                    self._counts = None
                self._read_at = time.monotonic()
            return self._counts


async def _authorize(request: Request) -> None:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "metrics need Authorization: Bearer with an admin token or CHUNKMATCH_METRICS_TOKEN"
        )
    token = bearer_token(header)
    expected = request.app.state.settings.metrics_token
    if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return
    if not (await token_principal(request, token)).is_admin:
        raise Forbidden("metrics need an admin token or CHUNKMATCH_METRICS_TOKEN")


def _job_counts(request: Request) -> JobCounts:
    state = request.app.state
    counts = getattr(state, "job_counts", None)
    if counts is None:
        counts = state.job_counts = JobCounts(state.store)
    return counts


class Metrics(HTTPEndpoint):
    @operation(
        "This process's Prometheus metrics (text format 0.0.4), and the jobs by status",
        responses={200: {"text/plain": {"type": "string"}}},
        security=[{"token": []}, {"metricsToken": []}],
    )
    async def get(self, request: Request) -> Response:
        await _authorize(request)
        body = metrics.exposition(await _job_counts(request).get())
        return Response(body, media_type=metrics.CONTENT_TYPE)

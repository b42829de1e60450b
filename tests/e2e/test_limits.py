"""Per-token request rate (429 with Retry-After) and per-owner quotas, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import server_with
from tests.e2e.helpers import create_project, upload


@asynccontextmanager
async def _serve(
    pg_server_dsn: str, **overrides: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with (
        server_with(pg_server_dsn, **overrides) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers()) as client,
    ):
        yield server, client


def _error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    return body["error"]


async def test_a_token_over_its_rate_gets_429_with_retry_after(pg_server_dsn, template_dsn) -> None:
    async with _serve(pg_server_dsn, rate_per_second=0.5, rate_burst=3) as (server, alice):
        answers = [await alice.get("/api/projects") for _ in range(5)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
        error = _error(answers[3], 429, "too_many_requests")
        assert answers[3].headers["retry-after"] == "2"
        assert "retry after 2 s" in error["message"]
        # the health check is not limited, and another token has its own bucket
        assert (await alice.get("/api/health")).status_code == 200
        bob = server.headers(server.other_token)
        assert (await alice.get("/api/projects", headers=bob)).status_code == 200


async def test_projects_quota_holds_under_concurrent_creations(pg_server_dsn, template_dsn) -> None:
    async with _serve(pg_server_dsn, max_projects_per_owner=3) as (server, alice):
        answers = await asyncio.gather(
            *(alice.post("/api/projects", json={"name": f"p{n}"}) for n in range(40))
        )
        assert sorted(r.status_code for r in answers) == [201] * 3 + [403] * 37
        error = _error(next(r for r in answers if r.status_code == 403), 403, "quota_exceeded")
        assert "3 projects" in error["message"]
        assert len((await alice.get("/api/projects")).json()["projects"]) == 3
        other = server.headers(server.other_token)
        r = await alice.post("/api/projects", json={"name": "bob's"}, headers=other)
        assert r.status_code == 201


async def test_records_quota_per_project(pg_server_dsn, template_dsn) -> None:
    async with _serve(pg_server_dsn, max_records_per_project=4) as (_, c):
        project_id = await create_project(c)
        records = [{"id": n, "name": f"r{n}"} for n in range(3)]
        await upload(c, project_id, "catalog", records)
        r = await c.post(
            f"/api/projects/{project_id}/catalog",
            content=b"id,name\n3,a\n4,b\n",
            headers={"Content-Type": "text/csv"},
        )
        error = _error(r, 403, "quota_exceeded")
        assert "5 catalog records" in error["message"] and "at most 4" in error["message"]
        # replacing records stays within the quota; the items have their own
        await upload(c, project_id, "catalog", records + [{"id": 3, "name": "r3"}])
        await upload(c, project_id, "items", records)
        project = (await c.get(f"/api/projects/{project_id}")).json()["project"]
        assert (project["catalogCount"], project["itemCount"]) == (4, 3)

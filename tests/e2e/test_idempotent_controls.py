"""Controls are idempotent, also when they race, and a manual completedAt is plausible
(issue 14, item 10)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.helpers import create_job, create_project, process_chunk, products, upload

CALLS = 8


async def _running_job(client: httpx.AsyncClient) -> dict:
    pid = await create_project(client, "controls")
    await upload(client, pid, "catalog", products(40, "c"))
    await upload(client, pid, "items", products(40, "i"))
    job = await create_job(client, pid, {"chunkSize": 10})
    body = await process_chunk(client, job["id"])
    assert body["job"]["status"] == "processing", body
    return job


async def _all(client: httpx.AsyncClient, job_id: str, action: str) -> set[tuple[int, str]]:
    answers = await asyncio.gather(
        *(client.post(f"/api/jobs/{job_id}/{action}") for _ in range(CALLS))
    )
    return {
        (r.status_code, r.json()["job"]["status"] if r.status_code == 200 else r.text)
        for r in answers
    }


async def test_concurrent_pauses_resumes_and_cancels_all_succeed(
    client: httpx.AsyncClient,
) -> None:
    job = await _running_job(client)
    for _ in range(4):
        assert await _all(client, job["id"], "pause") == {(200, "paused")}
        assert await _all(client, job["id"], "pause") == {(200, "paused")}  # already paused
        assert await _all(client, job["id"], "resume") == {(200, "processing")}
    assert await _all(client, job["id"], "cancel") == {(200, "cancelled")}
    r = await client.post(f"/api/jobs/{job['id']}/pause")
    assert r.status_code == 409  # a cancelled job cannot be paused


async def test_patch_completed_at_lies_between_creation_and_now(
    client: httpx.AsyncClient,
) -> None:
    job = await _running_job(client)
    created = datetime.fromisoformat(job["createdAt"].replace("Z", "+00:00"))
    url = f"/api/jobs/{job['id']}"
    for wrong in (created - timedelta(seconds=1), datetime.now(UTC) + timedelta(hours=1)):
        r = await client.patch(url, json={"status": "failed", "completedAt": wrong.isoformat()})
        assert r.status_code == 422, r.text
        assert "completedAt" in r.json()["error"]["message"]
    assert (await client.get(url)).json()["job"]["status"] == "processing"  # nothing changed
    right = created + timedelta(microseconds=1)
    r = await client.patch(url, json={"status": "failed", "completedAt": right.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["job"]["completedAt"] == right.isoformat().replace("+00:00", "Z")

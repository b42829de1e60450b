"""Pause, resume, retry, the cron driver, queue status and retention, over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import asyncpg
import httpx

from service.settings import Settings
from tests.conftest import TEST_CRON_SECRET, TEST_ENV, free_port, run_server_in_thread
from tests.e2e.helpers import create_job, create_project, drive, process_chunk, products, upload

CRON = {"Authorization": f"Bearer {TEST_CRON_SECRET}"}


async def _project(client: httpx.AsyncClient, n: int = 60) -> str:
    project_id = await create_project(client)
    catalog = products(n, "c")
    await upload(client, project_id, "catalog", catalog)
    await upload(
        client,
        project_id,
        "items",
        [{"id": f"i{k}", "name": r["name"]} for k, r in enumerate(catalog)],
    )
    return project_id


async def test_pause_and_resume(client: httpx.AsyncClient) -> None:
    job = await create_job(client, await _project(client), {"chunkSize": 20})
    await process_chunk(client, job["id"])
    r = await client.post(f"/api/jobs/{job['id']}/pause")
    assert r.status_code == 200 and r.json()["job"]["status"] == "paused"
    r = await client.post(f"/api/jobs/{job['id']}/process")
    assert r.json()["job"]["processedItems"] == 20  # a paused job is never advanced
    assert "paused" in r.json()["message"]
    r = await client.post(f"/api/jobs/{job['id']}/resume")
    assert r.status_code == 200 and r.json()["job"]["status"] == "processing"
    final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed" and final["processedItems"] == 60
    r = await client.post(f"/api/jobs/{job['id']}/pause")
    assert r.status_code == 409  # a completed job cannot be paused


async def test_retry_restarts_a_failed_job_where_it_stopped(client: httpx.AsyncClient) -> None:
    job = await create_job(client, await _project(client), {"chunkSize": 20})
    await process_chunk(client, job["id"])
    r = await client.post(f"/api/jobs/{job['id']}/retry")
    assert r.status_code == 409  # only a failed job can be retried
    await client.patch(f"/api/jobs/{job['id']}", json={"status": "failed", "error": "operator"})
    r = await client.post(f"/api/jobs/{job['id']}/retry")
    assert r.status_code == 200, r.text
    restarted = r.json()["job"]
    assert restarted["status"] == "processing" and restarted["error"] is None
    assert restarted["processedItems"] == 20  # from where it stopped
    final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed" and final["processedItems"] == 60


async def test_cron_driver_advances_jobs_by_priority_within_its_budget(
    client: httpx.AsyncClient, live_server
) -> None:
    low = await create_job(client, await _project(client), {"chunkSize": 30})
    r = await client.post(
        "/api/jobs/create",
        json={
            "projectId": await _project(client),
            "jobType": "enhanced",
            "priority": 9,
            "config": {"chunkSize": 30},
        },
    )
    high = r.json()["job"]
    assert high["priority"] == 9

    r = await client.post("/api/jobs/process", json={"maxJobs": 1, "timeout": 30000})
    assert r.status_code == 401
    r = await client.post(
        "/api/jobs/process", json={}, headers={"Authorization": "Bearer wrong-secret"}
    )
    assert r.status_code == 401
    r = await client.post("/api/jobs/process", json={"maxJobs": 0}, headers=CRON)
    assert r.status_code == 422

    # other tests' jobs may be runnable too: drive until both of ours are done
    touched: list[str] = []
    for _ in range(50):
        r = await client.post(
            "/api/jobs/process", json={"maxJobs": 1, "timeout": 30000}, headers=CRON
        )
        assert r.status_code == 200, r.text
        report = r.json()
        touched += [j["jobId"] for j in report["jobs"] if j["chunks"]]
        states = [
            (await client.get(f"/api/jobs/{j['id']}")).json()["job"]["status"] for j in (low, high)
        ]
        if states == ["completed", "completed"]:
            break
    assert states == ["completed", "completed"]
    ours = [j for j in touched if j in (low["id"], high["id"])]
    assert ours.index(high["id"]) < ours.index(low["id"])  # the high-priority job went first


async def test_cron_route_is_closed_without_a_secret(pg_server_dsn, template_dsn) -> None:
    from tests.conftest import drop_database, dsn_for, make_database

    name = await make_database(pg_server_dsn, "nocron")
    settings = replace(Settings.from_env(TEST_ENV), database_url=dsn_for(pg_server_dsn, name))
    port = free_port()
    server, thread = await asyncio.to_thread(run_server_in_thread, settings, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.post("/api/jobs/process", headers=CRON, json={})
            assert r.status_code == 403
            assert "CRON_SECRET" in r.json()["error"]["message"]
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        await drop_database(pg_server_dsn, name)


async def test_status_and_cleanup(client: httpx.AsyncClient, live_server) -> None:
    project_id = await _project(client, 20)
    job = await create_job(client, project_id)
    await drive(client, job["id"])
    r = await client.get("/api/jobs/status")
    body = r.json()
    assert body["counts"]["completed"] >= 1
    assert set(body["counts"]) >= {
        "pending",
        "processing",
        "paused",
        "completed",
        "failed",
        "cancelled",
    }
    assert 0 <= body["successRate"] <= 1
    assert body["averageDurationSeconds"] >= 0

    matched_before = (await client.get(f"/api/projects/{project_id}")).json()["project"]
    assert matched_before["matchedItems"] == 20
    r = await client.post("/api/jobs/cleanup", json={"daysOld": -1})
    assert r.status_code == 422
    r = await client.post("/api/jobs/cleanup", json={})
    assert r.status_code == 422  # no JOB_RETENTION_DAYS configured: say how many days

    # age our job past 30 days, then clean up: the job, its chunks and matches go
    conn = await asyncpg.connect(live_server.dsn)
    try:
        await conn.execute(
            "UPDATE matching_jobs SET completed_at = now() - interval '31 days' WHERE id = $1",
            uuid.UUID(job["id"]),
        )
        r = await client.post("/api/jobs/cleanup", json={"daysOld": 30})
        assert r.status_code == 200 and r.json()["deleted"] >= 1
        left = await conn.fetchval(
            "SELECT count(*) FROM job_chunks WHERE job_id = $1", uuid.UUID(job["id"])
        )
        assert left == 0
    finally:
        await conn.close()
    assert (await client.get(f"/api/jobs/{job['id']}")).status_code == 404
    project = (await client.get(f"/api/projects/{project_id}")).json()["project"]
    # the project's matched/unmatched state follows the matches that remain
    assert project["matchedItems"] == 0 and project["unmatchedItems"] == 20
    again = await create_job(client, project_id)
    assert again["totalItems"] == 20

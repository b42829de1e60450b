"""Live push: a job's Server-Sent Events over real HTTP, its tickets, and the built-in
worker that moves jobs with nobody calling /process."""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import httpx

from tests.conftest import server_with
from tests.e2e.helpers import create_job, create_project, drive, products, sse_frames, upload
from tests.e2e.processes import job_invariants

FINISHED = ("completed", "failed", "cancelled")


async def _project_with_data(client: httpx.AsyncClient, n: int = 60) -> str:
    pid = await create_project(client, "events")
    await upload(client, pid, "catalog", products(n, "c"))
    await upload(client, pid, "items", products(n, "i"))
    return pid


async def _collect(client: httpx.AsyncClient, url: str, **kwargs) -> list[dict]:
    frames = []
    async with client.stream("GET", url, **kwargs) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        async for frame in sse_frames(r):
            frames.append(frame)
    return frames


async def test_stream_sends_state_then_every_chunk_and_ends(client, live_server) -> None:
    pid = await _project_with_data(client)
    job = await create_job(client, pid, {"chunkSize": 10})
    url = f"/api/jobs/{job['id']}/events"
    events: list[dict] = []
    async with client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-cache"
        frames = sse_frames(r)
        first = await anext(frames)
        assert first["event"] == "progress" and first["data"]["status"] == "pending"
        now = (await client.get(f"/api/jobs/{job['id']}")).json()["job"]
        # the job's preparation may write its row in between: then the answer is newer
        if now["version"] == first["data"]["version"]:
            assert first["data"] == now
        else:
            assert now["version"] > first["data"]["version"] == int(first["id"])
        events.append(first)
        driving = asyncio.create_task(drive(client, job["id"]))
        async for frame in frames:  # the stream ends by itself after the terminal event
            events.append(frame)
        snapshots = await driving
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids)), ids  # increasing, never repeated
    last = events[-1]["data"]
    assert last["status"] == "completed" and last["processedItems"] == 60
    assert last == (await client.get(f"/api/jobs/{job['id']}")).json()["job"]
    # every committed chunk was pushed: each processed count the driver saw was an event
    pushed = {e["data"]["processedItems"] for e in events}
    assert {s["processedItems"] for s in snapshots} <= pushed


async def test_reconnect_with_last_event_id_gets_nothing_older(client) -> None:
    pid = await _project_with_data(client, 20)
    job = await create_job(client, pid, {"chunkSize": 10})
    await drive(client, job["id"])
    url = f"/api/jobs/{job['id']}/events"
    (final,) = await _collect(client, url)  # a finished job: its state, then the end
    assert final["data"]["status"] == "completed"
    assert await _collect(client, url, headers={"Last-Event-ID": final["id"]}) == []
    older = str(int(final["id"]) - 1)
    (again,) = await _collect(client, url, headers={"Last-Event-ID": older})
    assert again["id"] == final["id"]
    r = await client.get(url, headers={"Last-Event-ID": "not-a-number"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_comment_lines_keep_a_quiet_stream_open(pg_server_dsn, template_dsn) -> None:
    async with (
        server_with(pg_server_dsn, sse_keepalive_seconds=0.1) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers()) as c,
    ):
        pid = await _project_with_data(c, 10)
        job = await create_job(c, pid)
        async with c.stream("GET", f"/api/jobs/{job['id']}/events") as r:
            frames = sse_frames(r)
            assert (await anext(frames))["event"] == "progress"
            # the job's preparation may still push a state or two; then the stream is quiet
            comments = 0
            async with asyncio.timeout(5):
                while comments < 2:
                    frame = await anext(frames)
                    comments += "comment" in frame


async def test_another_owner_gets_no_events_and_no_ticket(client, live_server) -> None:
    pid = await _project_with_data(client, 10)
    job = await create_job(client, pid)
    bob = live_server.headers(live_server.other_token)
    async with httpx.AsyncClient(base_url=live_server.url, headers=bob) as c:
        assert (await c.get(f"/api/jobs/{job['id']}/events")).status_code == 404
        assert (await c.post(f"/api/jobs/{job['id']}/events-ticket")).status_code == 404
    async with httpx.AsyncClient(base_url=live_server.url) as c:
        assert (await c.get(f"/api/jobs/{job['id']}/events")).status_code == 401


async def test_a_ticket_opens_that_jobs_events_and_nothing_else(client, live_server) -> None:
    pid = await _project_with_data(client, 10)
    job = await create_job(client, pid)
    other_pid = await _project_with_data(client, 10)
    other = await create_job(client, other_pid)
    r = await client.post(f"/api/jobs/{job['id']}/events-ticket")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and set(body) == {"success", "ticket", "expiresAt"}
    ticket = body["ticket"]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as anon:
        url = f"/api/jobs/{job['id']}/events?ticket={ticket}"
        async with anon.stream("GET", url) as s:
            assert s.status_code == 200
            first = await anext(sse_frames(s))
            assert first["data"]["id"] == job["id"]
        refused = [
            ("GET", f"/api/jobs/{other['id']}/events?ticket={ticket}"),  # another job
            ("GET", f"/api/jobs/{job['id']}?ticket={ticket}"),  # another route
            ("POST", f"/api/jobs/{job['id']}/process?ticket={ticket}"),
            ("POST", f"/api/jobs/{job['id']}/events-ticket?ticket={ticket}"),
            ("GET", f"/api/jobs/{job['id']}/matches?ticket={ticket}"),
            ("GET", f"/api/jobs/{job['id']}/events?ticket=cm_made-up"),
        ]
        for method, path in refused:
            answer = await anon.request(method, path)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized"
        # a ticket is no token either
        bearer = {"Authorization": f"Bearer {ticket}"}
        assert (await anon.get(f"/api/jobs/{job['id']}", headers=bearer)).status_code == 401
        # an expired ticket is refused
        conn = await asyncpg.connect(live_server.dsn)
        try:
            await conn.execute("UPDATE event_tickets SET expires_at = now() - interval '1 s'")
        finally:
            await conn.close()
        assert (await anon.get(f"/api/jobs/{job['id']}/events?ticket={ticket}")).status_code == 401


async def test_built_in_worker_completes_a_job_nobody_drives(pg_server_dsn, template_dsn) -> None:
    async with server_with(pg_server_dsn, serve_worker=True, lease_seconds=10.0) as server:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers(), timeout=60
        ) as c:
            pid = await _project_with_data(c, 80)
            job = await create_job(c, pid, {"chunkSize": 10})
            started = time.monotonic()
            frames = await asyncio.wait_for(_collect(c, f"/api/jobs/{job['id']}/events"), 120)
            assert frames[-1]["data"]["status"] == "completed", frames[-1]
            assert time.monotonic() - started < 120
        counts = await job_invariants(server.dsn, job["id"])
        assert counts["total"] == 80 and counts["chunks"] == 8


async def test_open_streams_hold_no_database_connection(pg_server_dsn, template_dsn) -> None:
    # a pool of 3 (one of them listening): 40 open streams must leave the rest free
    async with (
        server_with(pg_server_dsn, pool_max_size=3) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=30) as c,
    ):
        pid = await _project_with_data(c, 10)
        job = await create_job(c, pid)
        url = f"/api/jobs/{job['id']}/events"
        async with contextlib.AsyncExitStack() as streams:
            for _ in range(40):
                stream = await streams.enter_async_context(c.stream("GET", url))
                assert (await anext(sse_frames(stream)))["event"] == "progress"
            started = time.monotonic()
            r = await c.post(f"/api/jobs/{job['id']}/process")
            assert r.status_code == 200 and time.monotonic() - started < 10
            r = await c.get(f"/api/projects/{pid}")
            assert r.status_code == 200

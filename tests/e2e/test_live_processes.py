"""Built-in worker, live push and polls from memory across real ``chunkmatch serve``
processes on one database: SIGTERM stops a serving worker promptly and loses nothing,
events reach a subscriber whichever process commits, and a revoked token stops working on
every process within a second."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time

import asyncpg
import httpx

from tests.e2e.helpers import process_chunk, sse_frames
from tests.e2e.processes import (
    CHUNKMATCH,
    ServiceProcess,
    auth,
    create_token,
    job_invariants,
    process_env,
    seed_project,
    wait_until,
)


async def _job_row(dsn: str, job_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow("SELECT * FROM matching_jobs WHERE id = $1::uuid", job_id)
    finally:
        await conn.close()


async def _drain(frames) -> list[dict]:
    return [f async for f in frames]


async def test_sigterm_stops_the_built_in_worker_promptly_and_loses_nothing(db_dsn) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    on = {"CHUNKMATCH_SERVE_WORKER": "on", "WORKER_GRACE_SECONDS": "10"}
    server = await asyncio.to_thread(ServiceProcess(db_dsn, on).start)
    try:
        _, job_id = await asyncio.to_thread(
            seed_project, server.url, token, 6000, 3000, chunk_size=200
        )
        async with (
            httpx.AsyncClient(base_url=server.url, headers=auth(token), timeout=60) as c,
            c.stream("GET", f"/api/jobs/{job_id}/events") as stream,
        ):
            frames = sse_frames(stream)
            async for frame in frames:  # nobody calls /process: the server's worker does
                if frame.get("data", {}).get("processedItems", 0) > 0:
                    break
            stopped_at = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            async for _ in frames:  # the stream is closed by the server, promptly
                pass
            stream_closed = time.monotonic() - stopped_at
        # uvicorn re-raises SIGTERM once it has shut down cleanly
        assert await asyncio.to_thread(server.proc.wait, 30) in (0, -signal.SIGTERM)
        exited = time.monotonic() - stopped_at
        assert stream_closed < 5, stream_closed
        assert exited < 15, exited
        row = await _job_row(db_dsn, job_id)
        assert row["status"] != "completed", "the job should still have had chunks to do"
        conn = await asyncpg.connect(db_dsn)
        try:
            held = await conn.fetchval(
                "SELECT count(*) FROM job_chunks WHERE job_id = $1::uuid AND status = 'running' "
                "AND lease_expires_at > now()",
                job_id,
            )
        finally:
            await conn.close()
        assert held == 0  # finished or released: nothing left under a live lease
        # a new serving process with its worker finishes the job by itself
        second = await asyncio.to_thread(ServiceProcess(db_dsn, on).start)
        try:

            async def completed() -> bool:
                return (await _job_row(db_dsn, job_id))["status"] == "completed"

            await wait_until(completed, timeout=120, interval=0.2)
        finally:
            second.stop()
        counts = await job_invariants(db_dsn, job_id)
    finally:
        server.stop()
    print(f"\nserve SIGTERM: stream closed {stream_closed:.2f}s, exited {exited:.2f}s, {counts}")


async def test_events_and_polls_follow_commits_of_another_process(db_dsn) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    a, b = ServiceProcess(db_dsn), ServiceProcess(db_dsn)
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    try:
        _, job_id = await asyncio.to_thread(seed_project, b.url, token, 400, 200, chunk_size=50)
        async with (
            httpx.AsyncClient(headers=auth(token), timeout=60) as c,
            c.stream("GET", f"{a.url}/api/jobs/{job_id}/events") as stream,
        ):
            frames = sse_frames(stream)
            assert (await anext(frames))["data"]["status"] == "pending"
            seen: list[dict] = []
            for _ in range(8):  # B commits; A's subscriber and A's poll see each chunk
                done = (await process_chunk(c, job_id, url=b.url))["job"]
                while not seen or seen[-1]["processedItems"] < done["processedItems"]:
                    frame = await asyncio.wait_for(anext(frames), 5)
                    seen.append(frame["data"])

                async def a_polls_it(want=done["processedItems"]) -> bool:
                    r = await c.get(f"{a.url}/api/jobs/{job_id}")
                    return r.json()["job"]["processedItems"] == want

                await wait_until(a_polls_it, timeout=1.0, interval=0.01)
            rest = [f async for f in frames]
        assert (seen + [f["data"] for f in rest])[-1]["status"] == "completed"
        counts = await job_invariants(db_dsn, job_id)
    finally:
        a.stop()
        b.stop()
    print(f"\ntwo processes: {len(seen)} events pushed across processes, {counts}")


async def test_a_revoked_token_stops_working_on_every_process_within_a_second(db_dsn) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    servers = [ServiceProcess(db_dsn), ServiceProcess(db_dsn)]
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
    try:
        _, job_id = await asyncio.to_thread(
            seed_project, servers[0].url, token, 20, 20, chunk_size=20
        )
        async with contextlib.AsyncExitStack() as stack:
            c = await stack.enter_async_context(httpx.AsyncClient(headers=auth(token), timeout=30))

            async def prepared() -> bool:  # its progress would reach the streams as frames
                job = (await c.get(f"{servers[0].url}/api/jobs/{job_id}")).json()["job"]
                return job["preparation"] is None

            await wait_until(prepared, timeout=60.0)
            streams = []
            for s in servers:  # each process has the token in memory now, and a stream open
                for _ in range(3):
                    assert (await c.get(f"{s.url}/api/jobs")).status_code == 200
                stream = await stack.enter_async_context(
                    c.stream("GET", f"{s.url}/api/jobs/{job_id}/events")
                )
                frames = sse_frames(stream)
                assert (await anext(frames))["event"] == "progress"
                streams.append(frames)
            result = await asyncio.to_thread(
                subprocess.run,
                [CHUNKMATCH, "token", "revoke", token[:9]],
                env=process_env(db_dsn),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            revoked_at = time.monotonic()
            for s in servers:

                async def refused(url=s.url) -> bool:
                    return (await c.get(f"{url}/api/jobs")).status_code == 401

                await wait_until(refused, timeout=1.0, interval=0.01)
            took = time.monotonic() - revoked_at
            for frames in streams:  # the open streams of that token end as well
                rest = await asyncio.wait_for(_drain(frames), 1.0)
                assert all("comment" in f for f in rest), rest
        assert took < 1.0
    finally:
        for s in servers:
            s.stop()
    print(f"\nrevocation reached both processes {took * 1000:.0f} ms after the command")


async def test_the_access_log_never_shows_a_ticket(db_dsn) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    server = await asyncio.to_thread(ServiceProcess(db_dsn, {"CHUNKMATCH_LOG_LEVEL": "INFO"}).start)
    try:
        _, job_id = await asyncio.to_thread(seed_project, server.url, token, 20, 20, chunk_size=20)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            r = await c.post(f"/api/jobs/{job_id}/events-ticket", headers=auth(token))
            ticket = r.json()["ticket"]
            async with c.stream("GET", f"/api/jobs/{job_id}/events?ticket={ticket}") as s:
                assert s.status_code == 200
                await anext(sse_frames(s))
            refused = await c.get(f"/api/jobs/{job_id}?ticket={ticket}")
            assert refused.status_code == 401
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert f"/api/jobs/{job_id}/events?ticket=REDACTED" in log  # the access log is on
    assert ticket not in log and ticket[3:20] not in log

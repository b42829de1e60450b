"""Exactly-once chunks under crashes, concurrency, database outages and worker shutdowns.

Real processes (``chunkmatch serve`` / ``chunkmatch worker``) on a real PostgreSQL; every
wait is a poll with a deadline. Each test prints its counts (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from service.database import EmbeddedPostgres
from tests.e2e.processes import (
    ServiceProcess,
    auth,
    create_token,
    job_invariants,
    seed_project,
    start_worker,
    wait_until,
)

DEADLINE_SECONDS = 180.0


async def _drive(
    urls: list[str],
    job_id: str,
    token: str,
    *,
    progress: list[int] | None = None,
    statuses: list[int] | None = None,
    stop_at: float | None = None,
) -> dict:
    """Call process on ``job_id`` (round-robin over ``urls``) until it completes."""
    deadline = stop_at or time.monotonic() + DEADLINE_SECONDS
    async with httpx.AsyncClient(timeout=60, headers=auth(token)) as client:
        n = random.randrange(len(urls))
        while time.monotonic() < deadline:
            url = urls[n % len(urls)]
            n += 1
            try:
                r = await client.post(f"{url}/api/jobs/{job_id}/process")
            except httpx.TransportError:  # the server is being killed or restarted
                await asyncio.sleep(0.05)
                continue
            if statuses is not None:
                statuses.append(r.status_code)
            if r.status_code == 503:
                await asyncio.sleep(0.1)
                continue
            assert r.status_code == 200, r.text
            body = r.json()
            job = body["job"]
            if job["status"] == "completed":
                return job
            if progress is not None and body["message"].startswith("Processed"):
                progress.append(job["processedItems"])
            if not body["message"].startswith("Processed"):
                await asyncio.sleep(0.05)  # busy or lease lost: poll politely
    raise AssertionError("the job did not complete in time")


async def test_sigkill_twenty_times_in_the_middle_of_chunks(db_dsn: str) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    server = await asyncio.to_thread(ServiceProcess(db_dsn).start)
    try:
        _, job_id = await asyncio.to_thread(
            seed_project, server.url, token, 12_000, 4_000, chunk_size=100
        )
        progress: list[int] = []
        statuses: list[int] = []
        driver = asyncio.create_task(
            _drive([server.url], job_id, token, progress=progress, statuses=statuses)
        )
        rng = random.Random(20261123)
        kills = 0
        while kills < 20 and not driver.done():
            # let the new process commit a few chunks, then kill it at a random moment
            target = len(progress) + rng.randint(1, 4)
            deadline = time.monotonic() + 60
            while len(progress) < target and not driver.done():
                assert time.monotonic() < deadline, "no progress after a restart"
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            server.kill()
            kills += 1
            await asyncio.to_thread(server.start)
        final = await driver
    finally:
        server.stop()
    counts = await job_invariants(db_dsn, job_id)
    assert kills == 20
    assert not [s for s in statuses if s >= 500]
    assert progress == sorted(progress)  # progress never went backwards
    print(f"\ncrash test: {kills} SIGKILLs, {counts}, final {final['processedItems']} items")


async def test_four_services_and_32_drivers_on_the_same_jobs(db_dsn: str) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    servers = [ServiceProcess(db_dsn) for _ in range(4)]
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
    try:
        jobs = [
            (
                await asyncio.to_thread(
                    seed_project, servers[k].url, token, 3000, 1500, chunk_size=40
                )
            )[1]
            for k in range(2)
        ]
        urls = [s.url for s in servers]
        statuses: list[int] = []
        await asyncio.gather(
            *(_drive(urls, jobs[d % 2], token, statuses=statuses) for d in range(32))
        )
    finally:
        for s in servers:
            s.stop()
    counts = [await job_invariants(db_dsn, j) for j in jobs]
    assert statuses and not [s for s in statuses if s >= 500]
    print(f"\nconcurrency test: 4 services, 32 drivers, {len(statuses)} calls, {counts}")


async def _until_or_driver_fails(condition, driver: asyncio.Task, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if driver.done():
            driver.result()  # raises the driver's failure, if any
            raise AssertionError("the driver finished before the condition held")
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_database_restart_in_the_middle_of_a_job() -> None:
    folder = Path(tempfile.mkdtemp(prefix="chunkmatch-outage-job-"))
    pg = EmbeddedPostgres(folder)
    dsn = pg.start()
    token = await asyncio.to_thread(create_token, dsn)
    server = await asyncio.to_thread(ServiceProcess(dsn, {"CHUNKMATCH_DB_RETRY_AFTER": "1"}).start)
    try:
        _, job_id = await asyncio.to_thread(
            seed_project, server.url, token, 6000, 2000, chunk_size=100
        )
        progress: list[int] = []
        statuses: list[int] = []
        driver = asyncio.create_task(
            _drive([server.url], job_id, token, progress=progress, statuses=statuses)
        )
        await _until_or_driver_fails(lambda: len(progress) >= 5, driver)
        await asyncio.to_thread(pg.stop)
        await _until_or_driver_fails(lambda: 503 in statuses, driver)
        await asyncio.sleep(1.0)  # the outage lasts a while: time is the subject here
        await asyncio.to_thread(pg.start)
        await driver
        assert server.proc.poll() is None  # the service lived through it
        counts = await job_invariants(dsn, job_id)
    finally:
        server.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert 500 not in statuses
    print(f"\noutage test: {statuses.count(503)} answers 503 during the outage, {counts}")


async def _job_status(dsn: str, job_id: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT status FROM matching_jobs WHERE id = $1::uuid", job_id)
    finally:
        await conn.close()


async def _chunks(dsn: str, job_id: str, where: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            f"SELECT seq, lease_owner, attempts FROM job_chunks WHERE job_id = $1::uuid AND {where}",
            job_id,
        )
    finally:
        await conn.close()


async def test_worker_wakes_on_notify_and_sigterm_loses_nothing(db_dsn: str) -> None:
    # a long poll interval: only LISTEN/NOTIFY can wake the worker in time
    worker = start_worker(
        db_dsn, WORKER_POLL_SECONDS="120", WORKER_CONCURRENCY="2", WORKER_GRACE_SECONDS="20"
    )
    token = await asyncio.to_thread(create_token, db_dsn)
    server = await asyncio.to_thread(ServiceProcess(db_dsn).start)
    try:
        await asyncio.sleep(1.0)  # let the idle worker reach its wait
        created = time.monotonic()
        _, job_id = await asyncio.to_thread(
            seed_project, server.url, token, 6000, 3000, chunk_size=200
        )
        await wait_until(lambda: _chunks(db_dsn, job_id, "status = 'done'"), timeout=30)
        woke_after = time.monotonic() - created
        assert woke_after < 30  # far below the 120 s poll: NOTIFY woke it

        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 40) == 0
        # nothing is left held by a live lease: chunks finished or were released
        held = await _chunks(db_dsn, job_id, "status = 'running' AND lease_expires_at > now()")
        assert held == []
        if await _job_status(db_dsn, job_id) != "completed":
            second = start_worker(db_dsn, WORKER_POLL_SECONDS="0.5")
            try:
                await wait_until(lambda: _is_completed(db_dsn, job_id), timeout=120)
            finally:
                second.terminate()
                second.wait(40)
        counts = await job_invariants(db_dsn, job_id)
    finally:
        server.stop()
        if worker.poll() is None:
            worker.kill()
    print(f"\nworker SIGTERM test: woke {woke_after:.2f}s after create, {counts}")


async def _is_completed(dsn: str, job_id: str) -> bool:
    return await _job_status(dsn, job_id) == "completed"


async def test_a_second_worker_takes_over_a_killed_workers_leases(db_dsn: str) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    server = await asyncio.to_thread(ServiceProcess(db_dsn).start)
    first = start_worker(db_dsn, WORKER_POLL_SECONDS="0.5", WORKER_CONCURRENCY="1")
    try:
        _, job_id = await asyncio.to_thread(
            seed_project, server.url, token, 8000, 4000, chunk_size=1000
        )
        orphans = await wait_until(
            lambda: _chunks(db_dsn, job_id, "status = 'running' AND lease_expires_at > now()"),
            timeout=DEADLINE_SECONDS,
            interval=0.005,
        )
        first.kill()  # mid-chunk: its lease is left behind
        first.wait(30)
        second = start_worker(db_dsn, WORKER_POLL_SECONDS="0.5", WORKER_CONCURRENCY="2")
        try:
            await wait_until(lambda: _is_completed(db_dsn, job_id), timeout=120)
        finally:
            second.terminate()
            assert second.wait(40) == 0
        counts = await job_invariants(db_dsn, job_id)
        reclaimed = await _chunks(db_dsn, job_id, "attempts > 1")
    finally:
        server.stop()
        if first.poll() is None:
            first.kill()
    orphan_seqs = {r["seq"] for r in orphans}
    assert orphan_seqs <= {r["seq"] for r in reclaimed} or not orphan_seqs
    print(f"\nworker takeover test: orphaned chunks {sorted(orphan_seqs)}, {counts}")

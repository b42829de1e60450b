"""The process's listener against a real PostgreSQL: a fresh snapshot is served from
memory, every committed change (from any connection) replaces it, a change this process
makes drops it at once, and a lost listener makes everything stale until it listens again."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from service.database import create_pool
from service.notify import Notifications
from service.store import Store
from tests.integration.test_engine import _job, _project


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _started(store: Store) -> Notifications:
    notifications = Notifications(store, token_cache_seconds=30)
    await notifications.start()
    assert await notifications.wait_listening(10)
    return notifications


async def test_a_fresh_snapshot_needs_no_database(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, max_size=4)
    store = Store(pool)
    job = await _job(store, await _project(store))
    notifications = await _started(store)
    try:
        first = await notifications.job(job.id)
        assert first is not None and first.owner == "tester"
        assert notifications.fresh(job.id) is first
        token, _ = await store.create_token("tester", is_admin=False)
        assert await notifications.principal(token) is not None
        await notifications.stop()
        await pool.close()  # no database any more: what is fresh still answers
        notifications.connected = True  # (stop() marked it stale; pretend it still listens)
        notifications._snapshots[job.id] = first
        assert await notifications.job(job.id) is first
    finally:
        await notifications.stop()
        if not pool._closed:
            await pool.close()


async def test_commits_from_anywhere_replace_the_snapshot(store: Store, db_dsn: str) -> None:
    job = await _job(store, await _project(store))
    notifications = await _started(store)
    try:
        before = await notifications.job(job.id)
        sub = notifications.subscribe(job.id)
        conn = await asyncpg.connect(db_dsn)  # another client, not this process's store
        try:
            await conn.execute(
                "UPDATE matching_jobs SET priority = 9 WHERE id = $1", uuid.UUID(job.id)
            )
        finally:
            await conn.close()
        pushed = await sub.next(5)
        assert pushed is not None and pushed.job.priority == 9
        assert pushed.version == before.version + 1
        held = notifications.fresh(job.id)  # the old one is gone: the new one, or none
        assert held is None or held.job.priority == 9
        assert (await notifications.job(job.id)).job.priority == 9
        # a change made by this process drops the snapshot before NOTIFY even arrives
        assert notifications.fresh(job.id) is not None
        await store.set_job_status(uuid.UUID(job.id), "paused", allowed_from=["pending"])
        assert notifications.fresh(job.id) is None
        assert (await notifications.job(job.id)).job.status == "paused"
        notifications.unsubscribe(sub)
    finally:
        await notifications.stop()


async def test_a_lost_listener_makes_everything_stale_until_it_listens_again(
    store: Store, db_dsn: str
) -> None:
    job = await _job(store, await _project(store))
    notifications = await _started(store)
    try:
        await notifications.job(job.id)
        assert notifications.fresh(job.id) is not None
        generation = notifications.generation
        conn = await asyncpg.connect(db_dsn)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
            assert killed >= 1
            await _until(lambda: not notifications.connected)
            assert notifications.fresh(job.id) is None
            # a change nobody hears about while the listener is down is still read
            await conn.execute(
                "UPDATE matching_jobs SET priority = 2 WHERE id = $1", uuid.UUID(job.id)
            )
            assert (await notifications.job(job.id)).job.priority == 2
            assert notifications.fresh(job.id) is None  # not kept: nobody listens
        finally:
            await conn.close()
        await _until(lambda: notifications.connected, timeout=10)
        assert notifications.generation == generation + 1
        await notifications.job(job.id)
        assert notifications.fresh(job.id) is not None
    finally:
        await notifications.stop()


async def test_a_slow_subscriber_holds_only_the_latest_state(store: Store) -> None:
    from dataclasses import replace

    from service.notify import JobSnapshot

    job = await _job(store, await _project(store))
    notifications = Notifications(store)
    slow, fast = notifications.subscribe(job.id), notifications.subscribe(job.id)
    received = []
    for version in range(1, 1001):
        snapshot = JobSnapshot(replace(job, version=version), "tester")
        for sub in (slow, fast):
            sub.offer(snapshot)
        received.append((await fast.next(1)).version)  # a reader keeping up gets each one
    assert received == list(range(1, 1001))
    latest = await slow.next(1)  # one that never read holds one state: the newest
    assert latest.version == 1000
    assert await slow.next(0.01) is None

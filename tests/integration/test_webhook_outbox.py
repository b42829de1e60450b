"""The webhook outbox against a real PostgreSQL: a job's events are written in the same
transaction as the change that caused them (none for a commit that lost its lease), one
delivery per subscribed webhook, claimed by one process at a time, a job's in order."""

from __future__ import annotations

import asyncio
import uuid

from service.models import StageOutcome
from service.store import Store
from service.webhooks import new_secret
from tests.integration.test_engine import _job, _project


async def _events(store: Store) -> list[tuple[str, int | None, str]]:
    rows = await store.pool.fetch(
        "SELECT type, stage, job->>'status' AS status FROM webhook_events ORDER BY seq"
    )
    return [(r["type"], r["stage"], r["status"]) for r in rows]


async def _hook(store: Store, project_id: str, *events: str) -> str:
    events = events or ("job.completed", "job.failed", "job.cancelled", "job.stage_completed")
    hook = await store.create_webhook(
        uuid.UUID(project_id), "https://hooks.example/x", list(events), new_secret(), max_webhooks=5
    )
    return hook.id


async def test_a_lost_lease_commit_writes_no_event(store: Store) -> None:
    project = await _project(store, n_items=10, n_catalog=10)
    await _hook(store, project.id)
    job_id = uuid.UUID((await _job(store, project, chunk_size=10)).id)
    first = await store.claim_chunk(job_id, owner="driver-a", lease_seconds=0.2)
    await asyncio.sleep(0.3)  # driver-a stalls past its lease: time is the subject
    second = await store.claim_chunk(job_id, owner="driver-b", lease_seconds=30)
    assert second.chunk.seq == first.chunk.seq

    # driver-a's commit would have completed the job: it commits nothing, and no event
    assert await store.commit_chunk(first.chunk, project.id, StageOutcome([])) is None
    assert await _events(store) == []

    done = await store.commit_chunk(second.chunk, project.id, StageOutcome([]))
    assert done.status == "completed"
    assert await _events(store) == [
        ("job.stage_completed", 1, "completed"),
        ("job.completed", None, "completed"),
    ]
    rows = await store.pool.fetch("SELECT event_type FROM webhook_deliveries ORDER BY event_seq")
    assert [r["event_type"] for r in rows] == ["job.stage_completed", "job.completed"]


async def test_cancel_and_failure_write_their_events_only_for_subscribers(store: Store) -> None:
    project = await _project(store, n_items=10, n_catalog=10)
    await _hook(store, project.id, "job.cancelled")
    job_id = uuid.UUID((await _job(store, project)).id)
    await store.set_job_status(job_id, "cancelled", allowed_from=("pending", "processing"))
    # another project's job, with no webhook: no event at all
    other = await _project(store, n_items=5, n_catalog=5)
    other_job = uuid.UUID((await _job(store, other)).id)
    await store.set_job_status(other_job, "cancelled", allowed_from=("pending", "processing"))
    assert await _events(store) == [("job.cancelled", None, "cancelled")]

    # failed after its last attempt (record_chunk_error): job.failed, not subscribed here
    failing = uuid.UUID((await _job(store, other)).id)
    await _hook(store, other.id, "job.failed")
    for _ in range(3):
        await store.record_chunk_error(str(failing), "boom", retry_in_seconds=0)
    assert (await store.get_job(failing)).status == "failed"
    assert [e[0] for e in await _events(store)] == ["job.cancelled", "job.failed"]


async def test_deliveries_are_claimed_once_and_in_order_per_job(store: Store) -> None:
    project = await _project(store, n_items=10, n_catalog=10)
    hook = await _hook(store, project.id)
    job_id = uuid.UUID((await _job(store, project, chunk_size=10)).id)
    claim = await store.claim_chunk(job_id, owner="d", lease_seconds=30)
    await store.commit_chunk(claim.chunk, project.id, StageOutcome([]))

    # two processes claim at once: the job's first event goes to one of them, and its
    # second waits until the first is delivered
    a, b = await asyncio.gather(
        store.claim_webhook_deliveries(owner="a", limit=10, lease_seconds=30),
        store.claim_webhook_deliveries(owner="b", limit=10, lease_seconds=30),
    )
    claimed = a + b
    assert [c.event_type for c in claimed] == ["job.stage_completed"]
    assert claimed[0].job.id == str(job_id) and claimed[0].job.status == "completed"
    assert claimed[0].stage == 1 and claimed[0].attempt == 1
    owner = "a" if a else "b"
    assert not await store.webhook_delivered(claimed[0].delivery_id, owner="c", status_code=200)
    assert await store.webhook_delivered(claimed[0].delivery_id, owner=owner, status_code=200)

    [second] = await store.claim_webhook_deliveries(owner="a", limit=10, lease_seconds=30)
    assert second.event_type == "job.completed" and second.event_id != claimed[0].event_id
    status = await store.webhook_attempt_failed(
        second.delivery_id,
        owner="a",
        status_code=503,
        error="HTTP 503",
        retry_in_seconds=60,
        give_up_after_seconds=86400,
    )
    assert status == "pending"
    assert await store.claim_webhook_deliveries(owner="a", limit=10, lease_seconds=30) == []
    deliveries = await store.webhook_deliveries(uuid.UUID(hook), before=None, limit=10)
    assert [(d.event_type, d.status, d.attempts, d.status_code) for d in deliveries] == [
        ("job.completed", "pending", 1, 503),
        ("job.stage_completed", "delivered", 1, 200),
    ]
    assert deliveries[0].next_attempt_at is not None
    assert await store.next_webhook_attempt_at() == deliveries[0].next_attempt_at

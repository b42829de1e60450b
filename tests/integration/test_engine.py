"""The chunk engine and store against a real PostgreSQL: leases, reclaim, CAS commits, caching."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service import engine as engine_module
from service import metrics
from service.catalog_index import IndexCache
from service.engine import Engine
from service.models import Project, StageOutcome
from service.stage_runners import prior_items_per_second
from service.store import Store, to_json_text
from tests.integration.helpers import enhanced_job, process_chunk


async def _project(store: Store, n_items: int = 50, n_catalog: int = 50) -> Project:
    project = await store.create_project("engine test", owner="tester")
    pid = uuid.UUID(project.id)
    catalog = [
        (f"c{i}", to_json_text({"id": f"c{i}", "name": f"Widget model WX{i:04d} blue"}))
        for i in range(n_catalog)
    ]
    items = [
        (f"i{i}", to_json_text({"id": f"i{i}", "name": f"widget WX{i:04d} (blue)"}))
        for i in range(n_items)
    ]
    await store.upload_records(pid, "catalog", catalog, ["id", "name"])
    await store.upload_records(pid, "items", items, ["id", "name"])
    return await store.get_project(pid, owner=None)


async def _job(store: Store, project: Project, chunk_size: int = 10):
    return await enhanced_job(store, project, chunk_size)


class BrokenCache(IndexCache):
    """An index cache whose every build fails with ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(max_entries=1)
        self.message = message

    async def get(self, key, load):
        raise RuntimeError(self.message)


async def test_a_lost_lease_commits_nothing_and_the_chunk_is_reclaimed(store: Store) -> None:
    project = await _project(store)
    job = await _job(store, project)
    job_id = uuid.UUID(job.id)
    first = await store.claim_chunk(job_id, owner="driver-a", lease_seconds=0.2)
    assert first.chunk is not None and (first.chunk.ord_from, first.chunk.ord_to) == (0, 10)

    # driver-a stalls past its lease; driver-b's claim reclaims the same range
    await asyncio.sleep(0.3)  # time itself is the subject here
    second = await store.claim_chunk(job_id, owner="driver-b", lease_seconds=30)
    assert second.chunk.seq == first.chunk.seq
    assert (second.chunk.ord_from, second.chunk.ord_to) == (0, 10)

    stale = await store.commit_chunk(
        first.chunk, project.id, StageOutcome([("i0", "c0", 0.9, "fuzzy", "x", None)])
    )
    assert stale is None  # compare-and-set on the lease refused driver-a
    fresh = await store.commit_chunk(
        second.chunk, project.id, StageOutcome([("i1", "c1", 0.9, "fuzzy", "y", None)])
    )
    assert fresh.processed_items == 10 and fresh.matches_found == 1
    page = await store.job_matches(fresh, after_id=0, limit=10)
    assert [m.item_id for m in page] == ["i1"]


async def test_a_cancelled_jobs_in_flight_chunk_does_not_commit(store: Store) -> None:
    project = await _project(store, n_items=20, n_catalog=20)
    job_id = uuid.UUID((await _job(store, project)).id)
    claim = await store.claim_chunk(job_id, owner="driver", lease_seconds=30)
    cancelled = await store.set_job_status(
        job_id, "cancelled", allowed_from=("pending", "processing", "paused")
    )
    assert cancelled is not None
    # the chunk finishes after the cancel: nothing of it is committed
    outcome = StageOutcome([(f"i{n}", f"c{n}", 0.9, "fuzzy", "x") for n in range(10)])
    assert await store.commit_chunk(claim.chunk, project.id, outcome) is None
    job = await store.get_job(job_id)
    assert (job.status, job.processed_items, job.matches_found) == ("cancelled", 0, 0)
    assert await store.job_matches(job, after_id=0, limit=100) == []
    # so a new job decides those items (once), not the cancelled one
    assert (await _job(store, project)).total_items == 20


async def test_claims_hand_out_disjoint_ranges_then_busy_then_complete(store: Store) -> None:
    project = await _project(store, n_items=25)
    job_id = uuid.UUID((await _job(store, project)).id)
    claims = [await store.claim_chunk(job_id, owner=f"d{k}", lease_seconds=30) for k in range(3)]
    assert [(c.chunk.ord_from, c.chunk.ord_to) for c in claims] == [(0, 10), (10, 20), (20, 25)]
    busy = await store.claim_chunk(job_id, owner="late", lease_seconds=30)
    assert busy.chunk is None and busy.busy
    for c in reversed(claims):  # commit order does not matter
        job = await store.commit_chunk(c.chunk, project.id, StageOutcome([]))
    assert job.status == "completed" and job.processed_items == 25
    assert job.progress_percentage == 100


async def test_a_job_keeps_its_catalog_version_and_the_next_job_uses_the_new_one(
    store: Store,
) -> None:
    project = await _project(store, n_items=20, n_catalog=20)
    cache = IndexCache(max_entries=2)
    engine = Engine(store, cache, lease_seconds=30)
    job_id = uuid.UUID((await _job(store, project)).id)
    outcome = await process_chunk(engine, job_id)
    assert outcome.processed == 10 and outcome.new_matches == 10
    (key,) = cache._entries
    # a catalog upload bumps the version: the running job keeps its own version's index
    await store.upload_records(
        uuid.UUID(project.id),
        "catalog",
        [("c99", to_json_text({"id": "c99", "name": "Gadget"}))],
        ["id", "name"],
    )
    outcome = await process_chunk(engine, job_id)
    assert outcome.job.status == "completed"
    assert list(cache._entries) == [key]
    # the next job uses the new version's index
    await store.upload_records(
        uuid.UUID(project.id),
        "items",
        [("i99", to_json_text({"id": "i99", "name": "Gadget"}))],
        ["id", "name"],
    )
    later = uuid.UUID((await _job(store, project)).id)
    outcome = await process_chunk(engine, later)
    assert outcome.new_matches == 1
    assert list(cache._entries) == [(key[0], key[1] + 1, key[2])]


async def test_a_failing_stage_is_retried_then_fails_the_job_then_can_restart(
    store: Store,
) -> None:
    project = await _project(store, n_items=5)
    job_id = uuid.UUID((await _job(store, project)).id)
    counted = {outcome: _chunks_counted(outcome) for outcome in ("failed", "committed")}

    broken = Engine(store, BrokenCache("index exploded"), lease_seconds=30, retry_base_seconds=0)
    first = await broken.process_next_chunk(job_id)
    assert first.job.status == "processing" and first.job.attempts == 1
    assert "attempt 1 of 3" in first.message and "index exploded" in first.job.error
    second = await broken.process_next_chunk(job_id)
    assert second.job.attempts == 2
    third = await broken.process_next_chunk(job_id)
    assert third.job.status == "failed" and "index exploded" in third.job.error
    assert "failed after 3 attempts" in third.message
    assert (await broken.process_next_chunk(job_id)).processed == 0  # failed: not advanced

    restarted = await store.set_job_status(job_id, "processing", allowed_from=("failed",))
    assert restarted.status == "processing" and restarted.attempts == 0
    assert restarted.error is None
    healthy = Engine(store, IndexCache(max_entries=1), lease_seconds=30)
    outcome = await process_chunk(healthy, job_id)  # the released chunk, reclaimed
    assert outcome.job.status == "completed" and outcome.job.processed_items == 5
    # the process's metrics count each chunk by how it ended
    assert _chunks_counted("failed") - counted["failed"] == 3
    assert _chunks_counted("committed") - counted["committed"] == 1


async def test_a_commit_the_database_refuses_is_retried_then_fails_the_job(
    store: Store,
) -> None:
    """The database refuses a chunk's commit (a trigger raises, as PostgreSQL's exp() once
    did at a 1M job's end): the call answers, the commit wrote nothing, the job is retried
    after a backoff and fails after its attempts, and once the cause is gone it completes."""
    project = await _project(store, n_items=5)
    job_id = uuid.UUID((await _job(store, project)).id)
    refuse = f"""
        CREATE FUNCTION refuse_i3_{job_id.hex}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.job_id = '{job_id}' AND NEW.item_id = 'i3' THEN
                RAISE EXCEPTION 'refused by the test';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_i3_{job_id.hex} BEFORE INSERT ON matches
        FOR EACH ROW EXECUTE FUNCTION refuse_i3_{job_id.hex}();
    """
    counted = _chunks_counted("failed")
    async with store.pool.acquire() as conn:
        await conn.execute(refuse)
    try:
        engine = Engine(store, IndexCache(max_entries=1), lease_seconds=30, retry_base_seconds=0)
        first = await engine.process_next_chunk(job_id)
        assert first.job.status == "processing" and first.job.attempts == 1
        assert "attempt 1 of 3" in first.message and "refused by the test" in first.job.error
        assert first.job.processed_items == 0
        async with store.pool.acquire() as conn:
            assert (
                await conn.fetchval("SELECT count(*) FROM matches WHERE job_id = $1", job_id) == 0
            )
        await engine.process_next_chunk(job_id)  # the released chunk, at once
        third = await engine.process_next_chunk(job_id)
        assert third.job.status == "failed" and "failed after 3 attempts" in third.message
        assert _chunks_counted("failed") - counted == 3
    finally:
        async with store.pool.acquire() as conn:
            await conn.execute(f"DROP TRIGGER refuse_i3_{job_id.hex} ON matches")
            await conn.execute(f"DROP FUNCTION refuse_i3_{job_id.hex}()")
    await store.set_job_status(job_id, "processing", allowed_from=("failed",))
    outcome = await process_chunk(engine, job_id)
    assert outcome.job.status == "completed" and outcome.job.processed_items == 5
    assert outcome.job.matches_found == 5


def _chunks_counted(outcome: str) -> float:
    labels = {"stage": "enhanced", "outcome": outcome}
    return metrics.REGISTRY.get_sample_value("chunkmatch_chunks_total", labels) or 0.0


async def test_backoff_holds_the_job_until_its_next_attempt(store: Store) -> None:
    project = await _project(store, n_items=5)
    job_id = uuid.UUID((await _job(store, project)).id)

    broken = Engine(store, BrokenCache("flaky"), lease_seconds=30, retry_base_seconds=60)
    await broken.process_next_chunk(job_id)
    waiting = await process_chunk(
        Engine(store, IndexCache(max_entries=1), lease_seconds=30), job_id
    )
    assert waiting.processed == 0
    assert "waiting: retrying after an error" in waiting.message
    assert await store.runnable_jobs(limit=10) == []


@pytest.mark.parametrize("drivers", [6])
async def test_parallel_engines_process_each_item_once(store: Store, drivers: int) -> None:
    project = await _project(store, n_items=200, n_catalog=200)
    job_id = uuid.UUID((await _job(store, project, chunk_size=7)).id)
    engines = [Engine(store, IndexCache(max_entries=1), lease_seconds=30) for _ in range(drivers)]

    async def drive(engine: Engine) -> None:
        for _ in range(500):
            outcome = await engine.process_next_chunk(job_id)
            if outcome.job.status == "completed":
                return
            if outcome.processed == 0:
                await asyncio.sleep(0.01)

    await asyncio.gather(*(drive(e) for e in engines))
    job = await store.get_job(job_id)
    assert job.processed_items == job.total_items == 200
    matches = []
    after = 0
    while page := await store.job_matches(job, after_id=after, limit=100):
        matches += page
        after = page[-1].id
    assert len(matches) == job.matches_found
    assert len({m.item_id for m in matches}) == len(matches)


async def test_a_long_chunk_keeps_its_lease(store: Store) -> None:
    project = await _project(store, n_items=5)
    job_id = uuid.UUID((await _job(store, project)).id)

    class SlowEngine(Engine):
        async def _run_stage(self, job, chunk):
            await asyncio.sleep(2.5)  # a chunk longer than two leases: time is the subject
            return await super()._run_stage(job, chunk)

    engine = SlowEngine(store, IndexCache(max_entries=1), lease_seconds=1.0)
    rival = Engine(store, IndexCache(max_entries=1), lease_seconds=1.0)

    async def rival_tries() -> list[int]:
        seen = []
        for _ in range(8):
            await asyncio.sleep(0.3)
            outcome = await rival.process_next_chunk(job_id)
            seen.append(outcome.processed)
        return seen

    slow, rival_processed = await asyncio.gather(process_chunk(engine, job_id), rival_tries())
    assert slow.processed == 5 and slow.job.status == "completed"  # its commit was accepted
    assert sum(rival_processed) == 0  # the renewed lease was never taken over


async def test_prewarm_builds_the_index_a_default_job_then_uses(store: Store) -> None:
    project = await _project(store, n_items=10, n_catalog=10)
    cache = IndexCache(max_entries=4)
    engine = Engine(store, cache, lease_seconds=30)
    await engine.prewarm(project.id)
    (key,) = cache._entries
    assert key[0] == project.id and key[2] == ("name",)
    job_id = uuid.UUID((await _job(store, project)).id)
    outcome = await engine.process_next_chunk(job_id)
    assert outcome.processed == 10
    assert list(cache._entries) == [key]  # the job used the pre-built index


async def test_peers_are_built_once_per_items_version_and_prewarmed(store: Store) -> None:
    project = await _project(store, n_items=20, n_catalog=20)
    cache = IndexCache(max_entries=4)
    engine = Engine(store, cache, lease_seconds=30)
    await engine.prewarm(project.id)
    (entry,) = cache._entries.values()
    (peers_key,) = entry._peers
    assert peers_key[0] == project.id and peers_key[2] == ("name",)
    prewarmed = entry._peers[peers_key]
    assert len(prewarmed) == 20
    job_id = uuid.UUID((await _job(store, project)).id)
    await engine.process_next_chunk(job_id)
    assert entry._peers[peers_key] is prewarmed  # the chunk used the pre-built peers
    # an items upload bumps the items' version: the running job keeps its peers, the next
    # job builds new ones, once
    await store.upload_records(
        uuid.UUID(project.id),
        "items",
        [("i99", to_json_text({"id": "i99", "name": "widget WX0099 red"}))],
        ["id", "name"],
    )
    await engine.process_next_chunk(job_id)
    assert list(entry._peers) == [peers_key]
    await engine.process_next_chunk(uuid.UUID((await _job(store, project)).id))
    (new_key,) = entry._peers
    assert new_key[1] == peers_key[1] + 1 and len(entry._peers[new_key]) == 21


async def test_uploads_in_quick_succession_prewarm_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a quiet period that the second upload surely lands in, on a loaded machine too
    monkeypatch.setattr("service.engine.PREWARM_QUIET_SECONDS", 1.0)
    project = await _project(store, n_items=10, n_catalog=10)
    cache = IndexCache(max_entries=4)
    engine = Engine(store, cache, lease_seconds=30)

    async def another_upload() -> None:
        await asyncio.sleep(0.2)  # lands inside the first prewarm's quiet period
        await store.upload_records(
            uuid.UUID(project.id),
            "items",
            [("i98", to_json_text({"id": "i98", "name": "widget WX0098"}))],
            ["id", "name"],
        )

    await asyncio.gather(engine.prewarm(project.id), another_upload())
    assert cache._entries == {}  # the first upload's prewarm gave way
    await engine.prewarm(project.id)
    (entry,) = cache._entries.values()
    assert [len(p) for p in entry._peers.values()] == [11]


INLINE_SECONDS = 60.0
"""The inline preparation window of the tests that a build ending within it runs the chunk
in the same call: long enough for any load (the real windows' length is a timing goal)."""


class GatedCache(IndexCache):
    """An index cache whose builds wait for ``gate``: a preparation that takes as long as
    the test wants, without sleeping."""

    def __init__(self) -> None:
        super().__init__(max_entries=4)
        self.gate = asyncio.Event()

    async def get(self, key, load):
        async def gated_load():
            await self.gate.wait()
            return await load()

        return await super().get(key, gated_load)


async def _preparation_in_row(store: Store, job_id: uuid.UUID, want) -> dict | None:
    """The job's ``preparation`` column once ``want(value)`` holds (deadline 10 s)."""
    async with asyncio.timeout(10):
        while True:
            job = await store.get_job(job_id)
            if want(job.preparation):
                return job.preparation
            await asyncio.sleep(0.02)


async def test_a_job_prepares_before_its_first_chunk_and_shows_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = await _project(store, n_items=30, n_catalog=30)
    cache = GatedCache()
    engine = Engine(store, cache, lease_seconds=30)
    created = engine.start_preparation(await _job(store, project))
    assert created.preparation == {"step": "catalog_index", "progress": 0.0}
    job_id = uuid.UUID(created.id)
    shown = await _preparation_in_row(store, job_id, lambda p: p is not None)
    assert shown["step"] == "catalog_index" and 0.0 <= shown["progress"] < 1.0

    waiting = await engine.process_next_chunk(job_id, preparation_wait=0.05)
    assert waiting.preparing and waiting.processed == 0
    assert waiting.job.preparation["step"] == "catalog_index"
    assert waiting.message.startswith("Preparing: building the catalog index")
    assert waiting.job.status == "pending" and waiting.job.processed_items == 0  # no chunk

    cache.gate.set()
    # a build that ends within the call (a small catalog) lets the call go on with a chunk;
    # how soon it must end is a timing goal (benchmarks/), so it is generous here
    monkeypatch.setattr(engine_module, "PREPARATION_JOIN_INLINE_SECONDS", INLINE_SECONDS)
    outcome = await engine.process_next_chunk(job_id, preparation_wait=INLINE_SECONDS)
    assert not outcome.preparing and outcome.processed == 10
    assert outcome.job.preparation is None
    assert await _preparation_in_row(store, job_id, lambda p: p is None) is None
    while outcome.job.status != "completed":
        outcome = await engine.process_next_chunk(job_id)
        assert not outcome.preparing and outcome.processed == 10
    # another job on the same catalog and items finds everything built: no preparation
    other = engine.start_preparation(await _job(store, project))
    assert other.preparation is None and not engine._preparations


async def test_preparation_builds_the_peers_after_the_catalog_index(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = await _project(store, n_items=30, n_catalog=30)
    cache = IndexCache(max_entries=4)
    engine = Engine(store, cache, lease_seconds=30)
    job = await _job(store, project)
    catalog_key, peers_key = engine._index_keys(job)
    await engine._catalog(*catalog_key)  # the catalog index is built, the peers are not
    assert engine.preparation_state(job) == {"step": "peers", "progress": 0.0}
    monkeypatch.setattr(engine_module, "PREPARATION_INLINE_SECONDS", INLINE_SECONDS)
    outcome = await engine.process_next_chunk(uuid.UUID(job.id), preparation_wait=INLINE_SECONDS)
    # a small job's preparation ends within the call, which goes on with the chunk
    assert outcome.processed == 10 and not outcome.preparing
    assert engine.preparation_state(job) is None
    assert cache.peek(catalog_key).peek_peers(peers_key) is not None


async def test_a_failed_preparation_lets_the_chunk_fail_and_retry(store: Store) -> None:
    project = await _project(store, n_items=5)
    job_id = uuid.UUID((await _job(store, project)).id)

    engine = Engine(store, BrokenCache("index exploded"), lease_seconds=30, retry_base_seconds=0)
    outcome = await engine.process_next_chunk(job_id)
    assert not outcome.preparing and "index exploded" in outcome.job.error  # not a spin
    assert (await store.get_job(job_id)).preparation is None


async def test_parallel_drivers_of_a_preparing_job_claim_no_chunk(store: Store) -> None:
    project = await _project(store, n_items=30, n_catalog=30)
    cache = GatedCache()
    engine = Engine(store, cache, lease_seconds=30)
    job_id = uuid.UUID((await _job(store, project)).id)
    answers = await asyncio.gather(
        *(engine.process_next_chunk(job_id, preparation_wait=0.05) for _ in range(4))
    )
    assert all(a.preparing and a.processed == 0 for a in answers)
    assert len(engine._preparations) == 1  # one build for all of them
    cache.gate.set()
    await asyncio.wait_for(asyncio.gather(*engine._preparations.values()), 10)
    outcomes = [await engine.process_next_chunk(job_id) for _ in range(3)]
    assert [o.processed for o in outcomes] == [10, 10, 10]
    assert outcomes[-1].job.status == "completed"


async def _eta_in_row(store: Store, job_id: uuid.UUID) -> float:
    """The job's ETA once its preparation has written one (deadline 10 s)."""
    async with asyncio.timeout(10):
        while (job := await store.get_job(job_id)).eta_seconds is None:
            await asyncio.sleep(0.02)
    return job.eta_seconds


async def test_a_preparing_job_has_an_eta_from_the_prior_rate(store: Store) -> None:
    project = await _project(store, n_items=3000, n_catalog=30)
    cache = GatedCache()
    engine = Engine(store, cache, lease_seconds=30)
    created = engine.start_preparation(await _job(store, project, chunk_size=1000))
    job_id = uuid.UUID(created.id)
    # no completed job yet: the default prior rate, plus the build still to come
    at_default = 3000 / prior_items_per_second("enhanced", 30)
    eta = await _eta_in_row(store, job_id)
    assert at_default < eta < at_default + 5
    waiting = await engine.process_next_chunk(job_id, preparation_wait=0.05)
    assert waiting.preparing and waiting.job.eta_seconds is not None
    cache.gate.set()
    outcome = await engine.process_next_chunk(job_id)
    while outcome.job.status != "completed":
        outcome = await engine.process_next_chunk(job_id)

    # the completed job's own rate (its first chunk left out) is the next job's prior
    [rate] = await store.recent_stage_rates(project.id, "enhanced", jobs=5)
    assert rate > 0
    fresh = Engine(store, GatedCache(), lease_seconds=30)
    later = await _job(store, project, chunk_size=1000)
    assert await fresh._prior_rate(later, "enhanced") == pytest.approx(rate)
    fresh.start_preparation(later)
    eta = await _eta_in_row(store, uuid.UUID(later.id))
    assert eta >= round(3000 / rate, 1)
    fresh._preparations[later.id].cancel()


async def test_recent_stage_rates_prefer_the_owners_jobs_and_skip_other_stages(
    store: Store,
) -> None:
    assert await store.recent_stage_rates(str(uuid.uuid4()), "enhanced", jobs=5) == []
    project = await _project(store, n_items=30, n_catalog=30)
    engine = Engine(store, IndexCache(max_entries=4), lease_seconds=30)
    job_id = uuid.UUID((await _job(store, project)).id)
    while (await engine.process_next_chunk(job_id)).job.status != "completed":
        pass
    assert len(await store.recent_stage_rates(project.id, "enhanced", jobs=5)) == 1
    assert await store.recent_stage_rates(project.id, "ai", jobs=5) == []

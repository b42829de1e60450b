"""Helper processes matching a share of each chunk: the same rows as the server alone, and a
helper that fails or dies costs a chunk nothing but time. Real spawned processes, a real
PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from service import metrics
from service.catalog_index import MAX_PEER_SETS, IndexCache
from service.chunk_rows import match_rows
from service.engine import Engine
from service.match_processes import (
    MIN_SPLIT_ITEMS,
    PREFETCH_SHARE,
    IndexKey,
    MatchProcesses,
    _matcher,
)
from service.models import Job, Project
from service.store import Store, to_json_text
from tests.integration.helpers import enhanced_job

BRANDS = ["Sony", "Samsung", "Canon", "Nikon", "Philips", "Bose", "Apple", "Dell"]
KINDS = ["camera", "television", "headphones", "speaker", "monitor", "laptop", "router"]
CHUNK = 2 * MIN_SPLIT_ITEMS  # split in two shares


def _records(n_catalog: int = 400, n_items: int = 600) -> tuple[list[dict], list[dict]]:
    """A catalog with sibling variants, and items: reworded copies of some records (some
    with a typo or a size changed) and items with no counterpart at all, so that a job
    makes matches, misses and reviewable decisions."""
    rng = random.Random(7)
    catalog = []
    for i in range(n_catalog):
        brand, kind = BRANDS[i % len(BRANDS)], KINDS[(i // 8) % len(KINDS)]
        size = [16, 32, 64, 128][i % 4]
        catalog.append(
            {"id": f"c{i}", "name": f"{brand} {kind} {chr(65 + i % 26)}{i // 3:03d} {size}GB"}
        )
    items = []
    for n in range(n_items):
        if n % 4 == 3:  # no counterpart
            name = f"{rng.choice(BRANDS)} {rng.choice(KINDS)} Z{n:04d} edition"
        else:
            words = catalog[rng.randrange(n_catalog)]["name"].split()
            rng.shuffle(words)
            if n % 5 == 0:
                words[0] = words[0][:-1]  # a typo
            if n % 7 == 0:
                words = [w.replace("GB", "") if w.endswith("GB") else w for w in words]
            name = " ".join(words).lower()
        items.append({"id": f"i{n}", "name": name})
    return catalog, items


async def _project(store: Store) -> Project:
    catalog, items = _records()
    project = await store.create_project("helpers", owner="tester")
    pid = uuid.UUID(project.id)
    for kind, rows in (("catalog", catalog), ("items", items)):
        records = [(r["id"], to_json_text(r)) for r in rows]
        await store.upload_records(pid, kind, records, ["id", "name"])
    return await store.get_project(pid, owner=None)


async def _job(store: Store, project: Project) -> Job:
    return await enhanced_job(store, project, CHUNK)


def _processes(count: int = 1) -> MatchProcesses:
    processes = MatchProcesses(count, max_records=10_000, keep_indexes=2, keep_peers=MAX_PEER_SETS)
    processes.start()
    return processes


async def _ready(processes: MatchProcesses, engine: Engine, job: Job) -> None:
    """Build the job's index and peers, and wait for the helpers' copies."""
    await engine._job_index(job, with_peers=True)
    for _ in range(600):
        if processes.matchers(*engine._index_keys(job)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the helpers never held the job's index and peers")


async def _run(engine: Engine, job: Job) -> None:
    while True:
        outcome = await engine.process_next_chunk(uuid.UUID(job.id))
        if outcome.job.status == "completed":
            return
        assert outcome.job.status in ("pending", "processing"), outcome.message


async def _results(store: Store, job: Job) -> tuple[list[tuple], list[tuple]]:
    """The job's matches and review queue, as comparable rows (job ids left out)."""
    async with store.pool.acquire() as conn:
        matches = await conn.fetch(
            "SELECT item_id, catalog_id, score, method, reason, explanation::text, chunk_seq"
            " FROM matches WHERE job_id = $1 ORDER BY item_id",
            uuid.UUID(job.id),
        )
        review = await conn.fetch(
            "SELECT item_id, catalog_id, score, matched, error_chance, method, reason,"
            " explanation::text, candidates::text FROM review_queue WHERE job_id = $1"
            " ORDER BY item_id",
            uuid.UUID(job.id),
        )
    return [tuple(r) for r in matches], [tuple(r) for r in review]


async def _alone(store: Store) -> tuple[list[tuple], list[tuple]]:
    """What a job stores when the server matches every chunk alone."""
    alone = Engine(store, IndexCache(max_entries=2), lease_seconds=30)
    reference = await _job(store, await _project(store))
    await _run(alone, reference)
    return await _results(store, reference)


def _same_rows(got: list[tuple], wanted: list[tuple]) -> bool:
    """Whether two lists of rows are equal, their floats within 1e-8: a score is stored
    to 9 places, and the same pair scored in another process (its peers drafted there, or
    the rows batched otherwise) can differ in the last of them (0.987938707 against
    0.987938706), the sums of floats taken in another order."""

    def same(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return abs(a - b) <= 1e-8
        if isinstance(a, str) and isinstance(b, str) and a != b and a[:1] in "[{":
            try:  # JSON text (explanations, candidates): its floats within 1e-8 too
                return same(json.loads(a), json.loads(b))
            except ValueError:
                return False
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    return len(got) == len(wanted) and all(
        len(g) == len(w) and all(same(a, b) for a, b in zip(g, w, strict=True))
        for g, w in zip(got, wanted, strict=True)
    )


def _assert_same(actual: tuple[list[tuple], list[tuple]], expected: tuple[list, list]) -> None:
    """``actual`` results equal ``expected``; else fail naming the first rows that differ
    (pytest's diff of two lists of hundreds of tuples shows only their tails)."""
    for name, got, wanted in zip(("matches", "review"), actual, expected, strict=True):
        if not _same_rows(got, wanted):
            missing = [r for r in wanted if r not in got][:3]
            extra = [r for r in got if r not in wanted][:3]
            raise AssertionError(
                f"{name}: {len(got)} rows against {len(wanted)} alone;"
                f" only alone: {missing}; only here: {extra}"
            )


def _helper_items(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("chunkmatch_helper_items_total", {"outcome": outcome})
    return value or 0.0


async def test_chunks_matched_in_shares_store_what_the_server_alone_stores(store: Store) -> None:
    expected = await _alone(store)
    project = await _project(store)  # the same records (a project's later jobs skip matches)
    assert len(expected[0]) > 200 and len(expected[1]) > 20  # matches and reviewable ones

    processes = _processes()
    try:
        shared = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        job = await _job(store, project)
        await _ready(processes, shared, job)
        before = _helper_items("matched"), _helper_items("prefetched")
        await _run(shared, job)
        # the first chunk gave the helper half of it; while each chunk committed, the helper
        # matched the last share of the next one ahead (PREFETCH_SHARE of it)
        assert _helper_items("matched") - before[0] == CHUNK // 2
        assert _helper_items("prefetched") - before[1] == 2 * round(PREFETCH_SHARE * CHUNK)
        _assert_same(await _results(store, job), expected)
        done = await store.get_job(uuid.UUID(job.id))
        assert done.matches_found == len(expected[0]) and done.processed_items == 600
    finally:
        processes.close()


async def test_a_prepared_jobs_first_chunk_is_matched_ahead_too(store: Store) -> None:
    expected = await _alone(store)
    project = await _project(store)
    processes = _processes()
    try:
        engine = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        job = engine.start_preparation(await _job(store, project))
        assert job.preparation is not None
        assert await engine._preparations[job.id]
        # built, and the first share sent
        before = _helper_items("prefetched"), _helper_items("matched")
        await _run(engine, job)
        # every chunk's last share was matched ahead, the first chunk's too: the preparation
        # waited for the helper to load the index and peers
        assert processes.holds(*engine._index_keys(job))
        assert _helper_items("prefetched") - before[0] == 3 * round(PREFETCH_SHARE * CHUNK)
        assert _helper_items("matched") == before[1]
        _assert_same(await _results(store, job), expected)
    finally:
        processes.close()


async def test_work_done_ahead_for_a_chunk_another_driver_claimed_is_not_used(
    store: Store,
) -> None:
    """Two drivers (engines) take turns on one job: the first one's helper matches ahead a
    share of the next chunk, which the other driver claims; the first one's next chunk is
    another, so that work is dropped and the job stores what it stores alone."""
    expected = await _alone(store)
    project = await _project(store)
    processes = _processes()
    try:
        first = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        second = Engine(store, IndexCache(max_entries=2), lease_seconds=30)
        job = await _job(store, project)
        await _ready(processes, first, job)
        await second._job_index(job, with_peers=True)  # both ready: they take turns
        before = _helper_items("prefetched"), _helper_items("matched")
        done = False
        while not done:
            for engine in (first, second):
                outcome = await engine.process_next_chunk(uuid.UUID(job.id))
                done = done or outcome.job.status == "completed"
        assert _helper_items("prefetched") == before[0]  # chunk 2 went to the other driver
        assert _helper_items("matched") - before[1] == 2 * (CHUNK // 2)  # chunks 1 and 3
        _assert_same(await _results(store, job), expected)
    finally:
        processes.close()


async def test_a_helper_that_dies_has_its_share_matched_by_the_server(store: Store) -> None:
    expected = await _alone(store)
    project = await _project(store)  # the same records (a project's later jobs skip matches)

    processes = _processes()
    try:
        engine = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        job = await _job(store, project)
        await _ready(processes, engine, job)
        [pid] = processes.pids()
        os.kill(pid, signal.SIGKILL)
        failed = _helper_items("failed")
        await _run(engine, job)
        assert _helper_items("failed") - failed == CHUNK // 2  # the first chunk's share
        _assert_same(await _results(store, job), expected)  # nothing lost, nothing different
        # the helper was started again (empty: it is sent what is built from now on)
        [restarted] = processes.pids()
        assert restarted != pid
        assert processes.matchers(*engine._index_keys(job)) == []
    finally:
        processes.close()


def _helper_holds_frozen() -> tuple[int, int]:
    """In a helper: how many indexes and peer sets it holds, each counted only if the cycle
    collector's passes leave it out (frozen)."""
    from service import match_processes

    walked = {id(o) for o in gc.get_objects()}
    return (
        sum(id(i) not in walked for i in match_processes._indexes.values()),
        sum(id(p) not in walked for p in match_processes._peer_sets.values()),
    )


async def test_helpers_hold_only_what_they_were_given_and_forget_a_project(store: Store) -> None:
    project = await _project(store)
    processes = _processes()
    try:
        engine = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        job = await _job(store, project)
        catalog_key, peers_key = engine._index_keys(job)
        assert processes.matchers(catalog_key, peers_key) == []  # nothing built yet
        await _ready(processes, engine, job)
        [helper] = processes._helpers
        # what it loaded is out of its cycle collector's passes (service/heap.py)
        assert await asyncio.wrap_future(helper.executor.submit(_helper_holds_frozen)) == (1, 1)
        other_fields = (catalog_key[0], catalog_key[1], ("brand",))
        assert processes.matchers(other_fields, peers_key) == []
        newer_items = (peers_key[0], peers_key[1] + 1, peers_key[2])
        assert processes.matchers(catalog_key, newer_items) == []

        engine.index_cache.forget(project.id)  # the project's records were deleted
        assert processes.matchers(catalog_key, peers_key) == []
        # the helper itself dropped them: asked anyway, it answers that it holds nothing
        remote = _matcher(processes, helper, catalog_key, peers_key)
        with pytest.raises(LookupError):
            await remote([("i1", "sony camera")], 0.5, 1)

        await _ready(processes, engine, job)  # built again, so sent again
        rows, _ = await processes.matchers(catalog_key, peers_key)[0](
            [("i1", "sony camera a000 16gb")], 0.0, 1
        )
        assert [r[0] for r in rows] == ["i1"]
    finally:
        processes.close()


async def test_catalogs_above_the_size_limit_stay_in_the_server(store: Store) -> None:
    project = await _project(store)
    processes = MatchProcesses(1, max_records=100, keep_indexes=2, keep_peers=MAX_PEER_SETS)
    processes.start()
    try:
        engine = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        job = await _job(store, project)
        await engine._job_index(job, with_peers=True)  # 400 records > 100
        assert processes.matchers(*engine._index_keys(job)) == []
        before = _helper_items("matched")
        await _run(engine, job)
        assert _helper_items("matched") == before
    finally:
        processes.close()


def _with_more_records(catalog: list[dict], n: int, seed: int) -> list[dict]:
    """``catalog`` and ``n`` more records of random words: big enough that an index build
    is still under way when a job asks, and within the helpers' ``max_records``."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(6)) for _ in range(3000)]
    return catalog + [{"id": f"x{k}", "name": " ".join(rng.sample(words, 6))} for k in range(n)]


async def _big_catalog_job(
    store: Store, seed: int
) -> tuple[IndexKey, IndexKey, Callable, Callable]:
    """A job's index and peers keys, and what loads a big catalog for it
    (:func:`_with_more_records`) and its items."""
    project = await _project(store)
    job = await _job(store, project)
    catalog_key, peers_key = Engine(store, IndexCache(max_entries=1), lease_seconds=30)._index_keys(
        job
    )
    records = [(r["id"], r["name"]) for r in _with_more_records(_records()[0], 9_000, seed)]

    async def load_records() -> list[tuple[str, str]]:
        return records

    async def load_items() -> list[tuple[str, str]]:
        return await store.item_texts(project.id, job.items_version, peers_key[2])

    return catalog_key, peers_key, load_records, load_items


async def test_peers_drafted_by_a_helper_while_the_index_builds_are_the_servers_own(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that arrives while its catalog's index is being built: a free helper drafts
    the items' peers from the same records meanwhile, and they are exactly the peers the
    server builds alone."""
    catalog_key, peers_key, load_records, load_items = await _big_catalog_job(store, seed=3)

    # drafted at any point of the build (by default only before DRAFT_BEFORE_PROGRESS)
    monkeypatch.setattr("service.catalog_index.DRAFT_BEFORE_PROGRESS", 1.0)
    processes = _processes()
    try:
        processes.pids()  # started
        cache = IndexCache(max_entries=2, processes=processes)
        building = asyncio.create_task(cache.get(catalog_key, load_records))
        while cache.progress(catalog_key) == 0.0:  # its records not read yet
            await asyncio.sleep(0.001)
        drafted = _helper_items("drafted")
        entry, peers = await cache.with_peers(catalog_key, load_records, peers_key, load_items)
        await building
        assert _helper_items("drafted") - drafted == 600
        [helper] = processes._helpers
        assert helper.drafting is not None and helper.drafting.done() and not helper.busy

        plain = IndexCache(max_entries=1)
        _, own = await plain.with_peers(catalog_key, load_records, peers_key, load_items)
        assert peers is not None and own is not None
        assert peers.rows == own.rows and peers.prior_shift == own.prior_shift
        assert (peers.vectors != own.vectors).nnz == 0
        assert peers.rivals.tolist() == own.rivals.tolist()
        assert entry.peer_texts(peers_key) == dict(await load_items())

        # the helper kept its draft (sent only the job's prior): it matches as the server does
        for _ in range(600):
            if processes.matchers(catalog_key, peers_key):
                break
            await asyncio.sleep(0.05)
        [remote] = processes.matchers(catalog_key, peers_key)
        some = (await load_items())[:150]
        assert await remote(some, 0.26, len(some)) == match_rows(
            entry.index, some, 0.26, peers, len(some)
        )
    finally:
        processes.close()


async def test_a_job_prepared_while_its_index_builds_is_matched_as_by_the_server_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's path: the job is created while the catalog's index is being built (by the
    upload's background build); a helper drafts the peers meanwhile, loads the index once
    built, and the job stores exactly what the server alone stores."""
    catalog, items = _records()
    catalog = _with_more_records(catalog, 8_000, seed=5)

    async def project_of(name: str) -> Project:
        project = await store.create_project(name, owner="tester")
        pid = uuid.UUID(project.id)
        for kind, rows in (("catalog", catalog), ("items", items)):
            records = [(r["id"], to_json_text(r)) for r in rows]
            await store.upload_records(pid, kind, records, ["id", "name"])
        return await store.get_project(pid, owner=None)

    alone = Engine(store, IndexCache(max_entries=2), lease_seconds=30)
    reference = await _job(store, await project_of("alone"))
    await _run(alone, reference)
    expected = await _results(store, reference)

    monkeypatch.setattr("service.catalog_index.DRAFT_BEFORE_PROGRESS", 1.0)
    processes = _processes()
    try:
        processes.pids()  # started
        engine = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        job = await _job(store, await project_of("drafted"))
        catalog_key, peers_key = engine._index_keys(job)
        building = asyncio.create_task(engine._catalog(*catalog_key))  # the upload's build
        while engine.index_cache.progress(catalog_key) == 0.0:
            await asyncio.sleep(0.001)
        drafted, prefetched = _helper_items("drafted"), _helper_items("prefetched")
        job = engine.start_preparation(job)
        assert job.preparation is not None and await engine._preparations[job.id]
        await building
        assert _helper_items("drafted") - drafted == len(items)
        assert processes.holds(catalog_key, peers_key)  # loaded before the job was ready
        await _run(engine, job)
        # loaded before the job was ready, the helper matched as large a share of the first
        # chunk ahead as of the later ones
        assert _helper_items("prefetched") - prefetched == 3 * round(PREFETCH_SHARE * CHUNK)
        _assert_same(await _results(store, job), expected)
    finally:
        processes.close()


async def test_a_helper_that_dies_while_drafting_costs_the_peers_nothing_but_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog_key, peers_key, load_records, load_items = await _big_catalog_job(store, seed=9)

    monkeypatch.setattr("service.catalog_index.DRAFT_BEFORE_PROGRESS", 1.0)
    processes = _processes()
    try:
        [pid] = processes.pids()
        cache = IndexCache(max_entries=2, processes=processes)
        building = asyncio.create_task(cache.get(catalog_key, load_records))
        while cache.progress(catalog_key) == 0.0:
            await asyncio.sleep(0.001)
        drafted = _helper_items("drafted")
        peering = asyncio.create_task(
            cache.with_peers(catalog_key, load_records, peers_key, load_items)
        )
        while not processes._helpers[0].busy:  # drafting
            await asyncio.sleep(0.001)
        os.kill(pid, signal.SIGKILL)
        _, peers = await peering
        await building
        assert _helper_items("drafted") == drafted  # the server built them itself
        _, own = await IndexCache(max_entries=1).with_peers(
            catalog_key, load_records, peers_key, load_items
        )
        assert peers is not None and own is not None
        assert peers.rivals.tolist() == own.rivals.tolist()
        assert peers.prior_shift == own.prior_shift
        [restarted] = processes.pids()
        assert restarted != pid
    finally:
        processes.close()


async def test_an_index_that_cannot_be_copied_to_the_helpers_is_still_built(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The helpers are a cache: a copy that fails (here, out of memory while pickling) is
    logged, the index and peers are built, and the server matches alone."""
    project = await _project(store)
    processes = _processes()
    try:
        engine = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=30)
        job = await _job(store, project)

        def no_memory(*args: object) -> bytes:
            raise MemoryError

        monkeypatch.setattr("service.match_processes.pickle.dumps", no_memory)
        catalog, peers = await engine._job_index(job, with_peers=True)
        assert len(catalog.index) == 400 and peers is not None and len(peers) == 600
        assert processes.matchers(*engine._index_keys(job)) == []
        assert "could not copy a CatalogIndex to the helpers" in caplog.text
        monkeypatch.undo()
        await _run(engine, job)
        done = await store.get_job(uuid.UUID(job.id))
        assert done.processed_items == 600
    finally:
        processes.close()


_STOPPED_BY_SIGTERM = """
import signal
from service.match_processes import MatchProcesses

if __name__ == "__main__":
    processes = MatchProcesses(1, max_records=10, keep_indexes=1, keep_peers=1)
    processes.start()
    processes.pids()
    processes.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)  # as uvicorn ends a server
"""


def test_helpers_closed_before_a_sigterm_leave_no_semaphores_behind(tmp_path) -> None:
    """The server exits by the SIGTERM uvicorn re-raises: no exit handler runs, so the
    helpers' queues must be freed by :meth:`MatchProcesses.close` or multiprocessing's
    resource tracker writes a warning into the server's log (half the runs or more did:
    a race with the executor's thread, hence several runs)."""
    script = tmp_path / "stopped.py"
    script.write_text(_STOPPED_BY_SIGTERM)
    for _ in range(6):
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == -signal.SIGTERM, done.stderr
        assert "leaked" not in done.stderr, done.stderr

"""Each chunk records the ETA it gave; a completed job records how far off it was."""

from __future__ import annotations

import uuid

import pytest

from service.catalog_index import IndexCache
from service.engine import Engine
from service.store import Store
from tests.integration.helpers import process_chunk
from tests.integration.test_engine import _job, _project


async def test_chunks_record_their_eta_and_the_job_its_eta_errors(store: Store) -> None:
    project = await _project(store, n_items=100, n_catalog=100)
    job_id = uuid.UUID((await _job(store, project, chunk_size=10)).id)
    engine = Engine(store, IndexCache(max_entries=2), lease_seconds=30)
    seen = []
    while True:
        outcome = await process_chunk(engine, job_id)
        seen.append(outcome.job)
        if outcome.job.status == "completed":
            break
    assert all(j.eta_seconds is not None and j.items_per_second for j in seen[:-1])
    assert seen[-1].eta_seconds == 0

    chunks = await store.pool.fetch(
        "SELECT seq, eta_seconds, processed_items, finished_at, prepare_ms"
        " FROM job_chunks WHERE job_id = $1 ORDER BY seq",
        job_id,
    )
    assert [c["processed_items"] for c in chunks] == list(range(10, 101, 10))
    assert all(c["eta_seconds"] is not None and c["eta_seconds"] >= 0 for c in chunks)
    assert chunks[0]["prepare_ms"] >= 0
    # the ETA each chunk gave is the one the job showed then
    assert [c["eta_seconds"] for c in chunks[:-1]] == pytest.approx(
        [j.eta_seconds for j in seen[:-1]], abs=0.1
    )

    job = await store.pool.fetchrow(
        "SELECT completed_at, eta_error_10, eta_error_50, eta_error_90"
        " FROM matching_jobs WHERE id = $1",
        job_id,
    )
    for share, column in ((10, "eta_error_10"), (50, "eta_error_50"), (90, "eta_error_90")):
        chunk = next(c for c in chunks if c["processed_items"] >= share)
        real = (job["completed_at"] - chunk["finished_at"]).total_seconds()
        expected = (chunk["eta_seconds"] - real) / real if real else None
        assert job[column] == pytest.approx(expected), column


async def test_the_eta_error_is_measured_against_the_real_remaining_time(store: Store) -> None:
    """Known timings: an ETA of 90 s with 100 s really left is 10 % short."""
    project = await _project(store, n_items=20, n_catalog=20)
    job_id = uuid.UUID((await _job(store, project, chunk_size=10)).id)
    await store.pool.execute(
        "INSERT INTO job_chunks (job_id, seq, stage, ord_from, ord_to, status, items,"
        " started_at, finished_at, eta_seconds, processed_items) VALUES"
        " ($1, 1, 1, 0, 10, 'done', 10, '2026-01-01T00:00:00Z', '2026-01-01T00:00:10Z', 90, 10),"
        " ($1, 2, 1, 10, 20, 'done', 10, '2026-01-01T00:00:10Z', '2026-01-01T00:01:50Z', 0, 20)",
        job_id,
    )
    errors = await store.pool.fetchrow(
        "SELECT chunkmatch_eta_error($1, 20, 0.1, '2026-01-01T00:01:50Z') AS e10,"
        " chunkmatch_eta_error($1, 20, 0.9, '2026-01-01T00:01:50Z') AS e90",
        job_id,
    )
    assert errors["e10"] == pytest.approx(-0.1)
    assert errors["e90"] is None  # nothing was left to run after the last chunk

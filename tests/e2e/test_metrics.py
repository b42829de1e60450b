"""``GET /metrics`` over real HTTP: who may scrape, what a job's chunks add to the counters
(checked against ``job_chunks``), route labels that are templates, and a `chunkmatch worker`
serving its own metrics."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid

import asyncpg
import httpx

from tests.conftest import free_port, server_with
from tests.e2e.helpers import (
    Samples,
    create_job,
    create_project,
    drive,
    parse,
    products,
    total,
    upload,
    value,
)
from tests.e2e.processes import (
    CHUNKMATCH,
    ServiceProcess,
    auth,
    create_token,
    job_invariants,
    process_env,
    seed_project,
    start_worker,
)

METRICS_TOKEN = "metrics-secret-0123456789abcdef0123456789"


async def scrape(c: httpx.AsyncClient, token: str) -> Samples:
    r = await c.get("/metrics", headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


async def chunks_of(dsn: str, job_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT stage, items, matches FROM job_chunks WHERE job_id = $1 AND status = 'done'",
            uuid.UUID(job_id),
        )
    finally:
        await conn.close()


async def test_a_scrape_after_a_job_counts_its_chunks_items_and_matches(live_server) -> None:
    async with httpx.AsyncClient(
        base_url=live_server.url, timeout=60, headers=live_server.headers()
    ) as c:
        before = await scrape(c, live_server.admin_token)
        project_id = await create_project(c, "metrics")
        catalog = products(60, "c")
        await upload(c, project_id, "catalog", catalog)
        items = [{"id": f"i{k}", "name": r["name"]} for k, r in enumerate(catalog[:45])]
        items += [{"id": "nothing", "name": "zzqx unrelated thing"}]
        await upload(c, project_id, "items", items)
        job = await create_job(c, project_id, {"chunkSize": 10})
        await drive(c, job["id"])
        assert (await c.get(f"/api/jobs/{job['id']}")).json()["job"]["status"] == "completed"
        assert (await c.get("/no/such/page/12345")).status_code == 404
        after = await scrape(c, live_server.admin_token)

    chunks = await chunks_of(live_server.dsn, job["id"])
    assert len(chunks) == 5
    delta = {
        name: value(after, name, **labels) - value(before, name, **labels)
        for name, labels in (
            ("chunkmatch_chunks_total", {"stage": "enhanced", "outcome": "committed"}),
            ("chunkmatch_items_processed_total", {"stage": "enhanced"}),
            ("chunkmatch_chunk_duration_seconds_count", {"stage": "enhanced"}),
        )
    }
    assert delta["chunkmatch_chunks_total"] == len(chunks)
    assert delta["chunkmatch_chunk_duration_seconds_count"] == len(chunks)
    assert delta["chunkmatch_items_processed_total"] == sum(c["items"] for c in chunks) == 46
    matches = total(after, "chunkmatch_matches_total", stage="enhanced") - total(
        before, "chunkmatch_matches_total", stage="enhanced"
    )
    assert matches == sum(c["matches"] for c in chunks) > 0

    # the jobs gauge is the database's (read at most once a second per process)
    conn = await asyncpg.connect(live_server.dsn)
    try:
        completed = await conn.fetchval(
            "SELECT count(*) FROM matching_jobs WHERE status = 'completed'"
        )
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as c:
        deadline = time.monotonic() + 10
        while (
            value(await scrape(c, live_server.admin_token), "chunkmatch_jobs", status="completed")
            != completed
        ):
            assert time.monotonic() < deadline, "the jobs gauge never caught up"
            await asyncio.sleep(0.2)

    # route labels are templates; an unknown path is one label; no id is a label anywhere
    process = value(
        after,
        "chunkmatch_http_request_duration_seconds_count",
        route="/api/jobs/{job_id}/process",
        method="POST",
        status="200",
    ) - value(
        before,
        "chunkmatch_http_request_duration_seconds_count",
        route="/api/jobs/{job_id}/process",
        method="POST",
        status="200",
    )
    assert process >= len(chunks)
    assert (
        value(
            after,
            "chunkmatch_http_request_duration_seconds_count",
            route="unmatched",
            method="GET",
            status="404",
        )
        >= 1
    )
    labels = {v for (_, ls) in after for _, v in ls}
    assert not any(job["id"] in v or project_id in v or "12345" in v for v in labels)
    routes = {
        dict(ls)["route"]
        for (n, ls) in after
        if n == "chunkmatch_http_request_duration_seconds_count"
    }
    assert "/api/jobs/{job_id}" in routes and "/api/projects/{project_id}/catalog" in routes
    assert all(r.startswith("/") or r == "unmatched" for r in routes)


async def test_who_may_scrape(pg_server_dsn) -> None:
    async with (
        server_with(pg_server_dsn, metrics_token=METRICS_TOKEN) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30) as c,
    ):
        for token in (METRICS_TOKEN, server.admin_token):
            r = await c.get("/metrics", headers=auth(token))
            assert r.status_code == 200
            assert "chunkmatch_chunks_total" in r.text
        refused = [
            ({}, 401),
            ({"Authorization": "Basic abc"}, 401),
            (auth("cm_not-a-real-token"), 401),
            (auth(METRICS_TOKEN[:-1]), 401),
            (auth(server.token), 403),  # an owner's token: valid, but not an admin's
        ]
        for headers, status in refused:
            r = await c.get("/metrics", headers=headers)
            assert r.status_code == status, headers
            assert r.json()["success"] is False
            assert r.json()["error"]["code"] == {401: "unauthorized", 403: "forbidden"}[status]
            if status == 401:
                assert r.headers["www-authenticate"].startswith("Bearer")
        # the metrics token opens /metrics alone
        assert (await c.get("/api/projects", headers=auth(METRICS_TOKEN))).status_code == 401


async def test_a_worker_serves_its_own_metrics(db_dsn) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    # the server drives nothing itself (CHUNKMATCH_SERVE_WORKER=off): the worker does
    server = ServiceProcess(db_dsn, {"CHUNKMATCH_METRICS_TOKEN": METRICS_TOKEN})
    await asyncio.to_thread(server.start)
    port = free_port()
    worker = start_worker(
        db_dsn,
        CHUNKMATCH_WORKER_METRICS_PORT=str(port),
        CHUNKMATCH_METRICS_TOKEN=METRICS_TOKEN,
    )
    try:
        _, job_id = await asyncio.to_thread(seed_project, server.url, token, 40, 30, chunk_size=8)
        async with httpx.AsyncClient(timeout=10) as c:
            deadline = time.monotonic() + 120
            while True:
                job = (await c.get(f"{server.url}/api/jobs/{job_id}", headers=auth(token))).json()
                if job["job"]["status"] == "completed":
                    break
                assert time.monotonic() < deadline and worker.poll() is None, job
                await asyncio.sleep(0.1)
            url = f"http://127.0.0.1:{port}/metrics"
            assert (await c.get(url)).status_code == 401
            r = await c.get(url, headers=auth(METRICS_TOKEN))
            assert r.status_code == 200
            worker_samples = parse(r.text)
            served = parse((await c.get(f"{server.url}/metrics", headers=auth(METRICS_TOKEN))).text)
    finally:
        worker.terminate()
        assert worker.wait(30) == 0
        server.stop()
    counts = await job_invariants(db_dsn, job_id)
    chunks = await chunks_of(db_dsn, job_id)
    # the worker ran every chunk: its counters hold them all, the server's none
    committed = {"stage": "enhanced", "outcome": "committed"}
    assert value(worker_samples, "chunkmatch_chunks_total", **committed) == counts["chunks"]
    assert value(worker_samples, "chunkmatch_items_processed_total", stage="enhanced") == sum(
        c["items"] for c in chunks
    )
    assert value(served, "chunkmatch_chunks_total", **committed) == 0
    # the jobs gauge is the same from both processes
    assert value(worker_samples, "chunkmatch_jobs", status="completed") == 1
    assert value(served, "chunkmatch_jobs", status="completed") == 1


def test_a_worker_refuses_a_metrics_port_in_use(db_dsn) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [CHUNKMATCH, "worker", "--metrics-port", str(port)],
            env=process_env(db_dsn),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot serve the worker's metrics on 127.0.0.1:{port}" in result.stderr

"""LLM and web-search stages through the real service, against fake providers that are real
HTTP servers on 127.0.0.1 (driven by the real openai and httpx clients)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.conftest import (
    TEST_ENV,
    drop_database,
    dsn_for,
    free_port,
    make_database,
    make_tokens,
    run_server_in_thread,
)
from tests.e2e.helpers import drive, process_chunk
from tests.fakes import mixed_web
from tests.fakes.fixtures import (  # noqa: F401
    FAKE_API_KEY,
    fake_openai_fixture,
    fake_openai_server_fixture,
    fake_searxng_fixture,
    fake_searxng_server_fixture,
)

CATALOG = [
    {"id": "c1", "name": "Sony Bravia KDL-40W600 40 inch LED television"},
    {"id": "c2", "name": "Canon PIXMA MG3620 wireless inkjet printer"},
    {"id": "c3", "name": "Bose QuietComfort 35 wireless headphones II black"},
    {"id": "c4", "name": "Apple iPad Air 64GB WiFi space grey"},
    {"id": "c5", "name": "Philips Sonicare DiamondClean electric toothbrush"},
    {"id": "c6", "name": "Garmin Forerunner 245 GPS running watch"},
]
# worded so that words overlap (the fake model's rule) with their catalog record
ITEMS = [
    {"id": f"i{n}", "name": text}
    for n, text in enumerate(
        [
            "sony bravia 40 inch television led",
            "canon pixma wireless printer inkjet",
            "bose quietcomfort wireless headphones black",
            "apple ipad air space grey wifi",
            "philips sonicare electric toothbrush",
            "garmin forerunner gps watch running",
            "something nobody sells anywhere",
            "another unknown gadget here",
            "sony bravia television 40 inch",
            "bose headphones quietcomfort 35",
        ]
    )
]


@contextlib.asynccontextmanager
async def provider_servers(
    pg_server_dsn: str, fake_openai, fake_searxng, *, count: int = 1, **overrides
) -> AsyncIterator[tuple[list[httpx.AsyncClient], str]]:
    """``count`` in-process servers on one fresh database, wired to the fake providers."""
    name = await make_database(pg_server_dsn, "providers")
    dsn = dsn_for(pg_server_dsn, name)
    (token,) = await make_tokens(dsn, ("ai-user", False))
    wired = {
        "openai_api_key": FAKE_API_KEY,
        "openai_base_url": f"{fake_openai.url}/v1",
        "llm_model": "fake-model",
        "llm_max_attempts": 2,
        "search_url": fake_searxng.url,
        "chunk_time_budget_seconds": 3.0,
    }
    settings = replace(Settings.from_env(TEST_ENV), database_url=dsn, **{**wired, **overrides})
    ports = [free_port() for _ in range(count)]
    servers = [await asyncio.to_thread(run_server_in_thread, settings, p) for p in ports]
    clients = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{p}",
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
        )
        for p in ports
    ]
    try:
        yield clients, dsn
    finally:
        for client in clients:
            await client.aclose()
        for server, thread in servers:
            server.should_exit = True
            await asyncio.to_thread(thread.join, 30)
        await drop_database(pg_server_dsn, name)


@pytest.fixture
async def provider_server(
    pg_server_dsn, template_dsn, fake_openai, fake_searxng
) -> AsyncIterator[httpx.AsyncClient]:
    async with provider_servers(pg_server_dsn, fake_openai, fake_searxng) as ((client,), _):
        yield client


async def _project(client: httpx.AsyncClient) -> str:
    pid = (await client.post("/api/projects", json={"name": "ai"})).json()["project"]["id"]
    for kind, rows in (("catalog", CATALOG), ("items", ITEMS)):
        r = await client.post(f"/api/projects/{pid}/{kind}", json={"records": rows})
        assert r.status_code == 200, r.text
    return pid


async def _job(client: httpx.AsyncClient, pid: str, job_type: str, config=None) -> dict:
    body = {"projectId": pid, "jobType": job_type, "config": config or {}}
    r = await client.post("/api/jobs/create", json=body)
    assert r.status_code == 201, r.text
    return r.json()["job"]


async def _matches(client: httpx.AsyncClient, job_id: str) -> dict[str, dict]:
    page = (await client.get(f"/api/jobs/{job_id}/matches", params={"limit": 1000})).json()
    return {m["itemId"]: m for m in page["matches"]}


async def test_ai_job_decides_in_batches_and_never_pays_twice(
    provider_server: httpx.AsyncClient, fake_openai
) -> None:
    client = provider_server
    job = await _job(client, await _project(client), "ai", {"chunkSize": 10})
    assert job["currentStageName"] == "AI Matching" and job["chunkSize"] == 10
    final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed" and final["processedItems"] == 10
    matches = await _matches(client, job["id"])
    assert {m["method"] for m in matches.values()} == {"llm"}
    assert matches["i0"]["catalogId"] == "c1" and matches["i2"]["catalogId"] == "c3"
    assert "i6" not in matches and "i7" not in matches  # the model said: no match
    usage = final["usage"]
    assert usage["llmRequests"] == fake_openai.counters.requests
    assert usage["requestsPerItem"] <= 0.3  # several items per request
    assert usage["promptTokens"] > 0 and usage["tokensPerItem"] > 0
    assert FAKE_API_KEY not in str(final)

    # the same questions again (another project, same data): answered from the cache
    before = fake_openai.counters.requests
    again = await _job(client, await _project(client), "ai", {"chunkSize": 10})
    rerun = (await drive(client, again["id"]))[-1]
    assert fake_openai.counters.requests == before
    assert rerun["usage"]["cacheHits"] == 10 and rerun["usage"]["llmRequests"] == 0
    assert rerun["matchesFound"] == final["matchesFound"]


async def test_failing_items_are_recorded_and_can_be_retried(
    provider_server: httpx.AsyncClient, fake_openai
) -> None:
    client = provider_server
    # the model keeps answering with a record it was not offered for one item of each
    # request: that item fails (after its attempts); the others are decided
    fake_openai.add_faults(*["unknown_candidate"] * 4)
    job = await _job(client, await _project(client), "ai", {"chunkSize": 10})
    final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed"  # the job went on
    assert 1 <= final["failedItems"] < 10
    assert final["processedItems"] == 10 and final["matchesFound"] > 0
    failed = (await client.get(f"/api/jobs/{job['id']}/failed-items")).json()["items"]
    assert len(failed) == final["failedItems"] and all(f["error"] for f in failed)
    assert all("sony" not in (f["error"] or "").lower() for f in failed)  # no prompt text

    r = await client.post(f"/api/jobs/{job['id']}/retry-failed")
    assert r.status_code == 200, r.text
    assert r.json()["job"]["status"] == "processing"
    assert r.json()["job"]["failedItems"] == 0
    final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed" and final["failedItems"] == 0
    assert final["processedItems"] == 10
    r = await client.post(f"/api/jobs/{job['id']}/retry-failed")
    assert r.status_code == 409  # nothing left to retry


async def test_items_not_decided_in_time_go_back_to_the_queue(
    provider_server: httpx.AsyncClient, fake_openai
) -> None:
    client = provider_server
    fake_openai.latency = 5.0  # longer than the 3 s chunk budget
    job = await _job(client, await _project(client), "ai", {"chunkSize": 10})
    body = await process_chunk(client, job["id"])
    assert "put back in the queue" in body["message"]
    assert body["job"]["processedItems"] == 0 and body["job"]["status"] == "processing"
    fake_openai.latency = 0.0
    final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed" and final["processedItems"] == 10


async def test_a_provider_asking_to_wait_holds_the_job(
    provider_server: httpx.AsyncClient, fake_openai
) -> None:
    client = provider_server
    fake_openai.add_faults(("429", 900), ("429", 900))  # longer than we wait in-process
    job = await _job(client, await _project(client), "ai", {"chunkSize": 10})
    r = await process_chunk(client, job["id"])
    assert r["job"]["status"] == "processing"
    assert r["job"]["waitingReason"] and "wait" in r["job"]["waitingReason"]
    assert r["job"]["etaSeconds"] >= 800  # the ETA says how long, honestly
    r = (await client.post(f"/api/jobs/{job['id']}/process")).json()
    assert r["message"].startswith("Job is waiting")
    assert r["job"]["nextAttemptAt"] is not None


async def test_full_job_runs_its_stages_in_order(
    provider_server: httpx.AsyncClient, fake_openai, fake_searxng
) -> None:
    client = provider_server
    pid = await _project(client)
    fake_searxng.pages = [
        {"title": "Garmin Forerunner 245 GPS running watch", "url": "x", "content": "the watch"}
    ]
    job = await _job(client, pid, "full", {"chunkSize": {"enhanced": 4, "ai": 3, "web-search": 2}})
    assert job["stages"] == ["enhanced", "ai", "web-search"]
    sent = (fake_openai.counters.requests, fake_searxng.counters.requests)
    counted = _provider_metrics()
    snapshots = await drive(client, job["id"])
    stages_seen = [s["currentStage"] for s in snapshots]
    assert stages_seen == sorted(stages_seen)  # stages only move forward
    assert 2 in stages_seen
    final = snapshots[-1]
    assert final["status"] == "completed" and final["processedItems"] == final["totalItems"] == 10
    processed = [s["processedItems"] for s in snapshots]
    assert processed == sorted(processed)
    matches = await _matches(client, job["id"])
    assert len(matches) == final["matchesFound"]
    assert {m["method"] for m in matches.values()} & {"exact", "code", "fuzzy"}
    # items neither stage 1 nor 2 matched reached the web-search stage
    assert final["currentStage"] == 3 and final["currentStageName"] == "Web Search"
    assert fake_searxng.counters.requests >= 1
    assert final["usage"]["searchRequests"] == fake_searxng.counters.requests
    # the process's metrics counted what the providers were sent (this server runs here)
    now = _provider_metrics()
    assert now["llm"] - counted["llm"] == fake_openai.counters.requests - sent[0] > 0
    assert now["search"] - counted["search"] == fake_searxng.counters.requests - sent[1]
    assert now["prompt"] - counted["prompt"] == final["usage"]["promptTokens"] > 0


def _provider_metrics() -> dict[str, float]:
    from service.metrics import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {
        "llm": sample("chunkmatch_llm_requests_total"),
        "search": sample("chunkmatch_search_requests_total"),
        "prompt": sample("chunkmatch_llm_tokens_total", kind="prompt"),
    }


async def test_the_requests_per_minute_budget_is_shared_and_never_exceeded(
    pg_server_dsn, template_dsn, fake_openai, fake_searxng
) -> None:
    async with provider_servers(
        pg_server_dsn,
        fake_openai,
        fake_searxng,
        count=2,
        llm_requests_per_minute=3,
        llm_batch_size=2,
    ) as (clients, dsn):
        pid = await _project(clients[0])
        job = await _job(clients[0], pid, "ai", {"chunkSize": 4})
        # drive from both servers at once, as two processes would (each prepares first)
        for _ in range(3):
            await asyncio.gather(*(process_chunk(c, job["id"]) for c in clients))
        state = (await clients[1].get(f"/api/jobs/{job['id']}")).json()["job"]
        conn = await asyncpg.connect(dsn)
        try:
            windows = await conn.fetch("SELECT requests FROM provider_budget")
        finally:
            await conn.close()
    # 10 items at 2 per request need 5 requests; the shared budget allows 3 a minute
    assert windows and max(w["requests"] for w in windows) <= 3
    assert fake_openai.counters.requests == sum(w["requests"] for w in windows)
    assert state["usage"]["llmRequests"] == fake_openai.counters.requests
    assert state["failedItems"] == 0  # held by the budget, never failed for it
    if len(windows) == 1:  # (unless the run straddled a minute boundary)
        assert state["status"] == "processing" and state["processedItems"] < 10
        assert state["waitingReason"]


async def test_a_provider_down_holds_the_job_and_it_resumes(
    pg_server_dsn, template_dsn, fake_openai, fake_searxng
) -> None:
    async with provider_servers(
        pg_server_dsn, fake_openai, fake_searxng, provider_outage_wait_seconds=0.5
    ) as ((client,), _):
        fake_openai.add_faults(*["503"] * 200)  # down for a while
        job = await _job(client, await _project(client), "ai", {"chunkSize": 10})
        body = await process_chunk(client, job["id"])
        state = body["job"]
        assert state["status"] == "processing" and state["failedItems"] == 0, (
            body,
            fake_openai.counters,
            len(fake_openai.faults),
        )
        assert "unavailable" in state["waitingReason"]
        assert state["processedItems"] == 0 and state["nextAttemptAt"]
        fake_openai.reset()  # back up
        final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed" and final["failedItems"] == 0
    assert final["processedItems"] == 10 and final["matchesFound"] > 0


async def test_one_to_one_full_job_counts_every_item_once(
    provider_server: httpx.AsyncClient, fake_openai, fake_searxng
) -> None:
    client = provider_server
    pid = await _project(client)
    job = await _job(client, pid, "full", {"oneToOne": True, "chunkSize": 3})
    final = (await drive(client, job["id"]))[-1]
    assert final["status"] == "completed"
    assert final["processedItems"] == final["totalItems"] == 10
    matches = await _matches(client, job["id"])
    catalog_ids = [m["catalogId"] for m in matches.values()]
    assert len(catalog_ids) == len(set(catalog_ids)) == final["matchesFound"]


async def test_web_search_without_a_model_takes_only_what_agreeing_results_support(
    pg_server_dsn, template_dsn, fake_openai, fake_searxng
) -> None:
    # the right page among junk and another real product's page; four items name a
    # product the catalog lacks: the stage must leave them (and any doubt) unmatched
    fake_searxng.pages, fake_searxng.decoys = mixed_web.PAGES, mixed_web.DECOYS
    async with provider_servers(
        pg_server_dsn, fake_openai, fake_searxng, openai_api_key=None, llm_model=None
    ) as ((client,), _):
        pid = (await client.post("/api/projects", json={"name": "web"})).json()["project"]["id"]
        for kind, rows in (("catalog", mixed_web.CATALOG), ("items", mixed_web.ITEMS)):
            records = [{"id": key, "name": text} for key, text in rows]
            r = await client.post(f"/api/projects/{pid}/{kind}", json={"records": records})
            assert r.status_code == 200, r.text
        job = await _job(client, pid, "web-search", {"chunkSize": 6})
        final = (await drive(client, job["id"]))[-1]
        matches = await _matches(client, job["id"])
    assert final["status"] == "completed" and final["processedItems"] == len(mixed_web.ITEMS)
    assert fake_openai.counters.requests == 0
    assert {m["method"] for m in matches.values()} <= {"web"}
    precision, recall = mixed_web.precision_recall(
        {(m["itemId"], m["catalogId"]) for m in matches.values()}
    )
    assert precision >= 0.9 and recall >= 0.75, (precision, recall, matches)


async def test_a_match_withdrawn_beside_a_better_one_goes_on_to_the_next_stage(
    provider_server: httpx.AsyncClient, fake_openai
) -> None:
    """The enhanced stage's end withdraws the weak claim on a record an exact match holds
    (tests/e2e/test_withdrawn_matches.py); the AI stage then takes the item up, and the
    counts stay exact."""
    from tests.e2e.test_withdrawn_matches import contested_set

    client = provider_server
    pid = (await client.post("/api/projects", json={"name": "ai"})).json()["project"]["id"]
    catalog, items = contested_set()
    for kind, rows in (("catalog", catalog), ("items", items)):
        r = await client.post(f"/api/projects/{pid}/{kind}", json={"records": rows})
        assert r.status_code == 200, r.text
    job = await _job(client, pid, "full", {"chunkSize": {"enhanced": 5, "ai": 3, "web-search": 2}})
    asked = fake_openai.counters.items_answered
    snapshots = await drive(client, job["id"])
    final = snapshots[-1]
    assert final["status"] == "completed"
    assert final["processedItems"] == final["totalItems"] == len(items)
    # stage 1 matched all 42 and withdrew one: the AI stage was asked about that one only
    assert 2 in [s["currentStage"] for s in snapshots]
    assert fake_openai.counters.items_answered - asked == 1
    matches = await _matches(client, job["id"])
    assert len(matches) == final["matchesFound"]
    assert matches["exact"]["catalogId"] == "desk"
    assert matches.get("weak", {}).get("method") in (None, "llm", "web-search")

"""Jobs over real HTTP: create, advance chunk by chunk, watch, control, read matches."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import uuid

import asyncpg
import httpx

from tests.e2e.helpers import create_job, create_project, drive, process_chunk, products, upload


async def _project_with_data(client: httpx.AsyncClient, n: int = 120) -> str:
    project_id = await create_project(client)
    catalog = products(n, "c")
    items = [{"id": f"i{n_}", "name": r["name"].lower()} for n_, r in enumerate(catalog)]
    items += [{"id": f"x{k}", "name": f"unrelated thing {k} zzq"} for k in range(n // 4)]
    await upload(client, project_id, "catalog", catalog)
    await upload(client, project_id, "items", items)
    return project_id


async def test_job_runs_chunk_by_chunk_to_completion(client: httpx.AsyncClient) -> None:
    project_id = await _project_with_data(client)
    job = await create_job(client, project_id, {"chunkSize": 25})
    assert job["status"] == "pending"
    assert job["totalItems"] == 150
    assert job["chunkSize"] == 25
    assert job["currentStageName"] == "Enhanced Matching"

    snapshots = await drive(client, job["id"])
    assert len(snapshots) == 6  # 150 / 25: exactly one chunk per call
    processed = [s["processedItems"] for s in snapshots]
    assert processed == [25, 50, 75, 100, 125, 150]
    final = snapshots[-1]
    assert final["status"] == "completed"
    assert final["progressPercentage"] == 100
    assert final["completedAt"] is not None and final["startedAt"] is not None
    assert final["matchesFound"] >= 115  # the 120 lower-cased copies, allowing a few misses
    assert final["matchesFound"] <= 120  # the 30 unrelated items stay unmatched
    assert abs(final["matchRate"] - final["matchesFound"] / 150 * 100) < 0.01
    assert final["itemsPerSecond"] > 0
    assert all(s["etaSeconds"] is not None for s in snapshots)

    # harmless on a finished job, and says so
    r = await client.post(f"/api/jobs/{job['id']}/process")
    assert r.status_code == 200
    assert "completed" in r.json()["message"]
    assert r.json()["job"]["processedItems"] == 150

    r = await client.get(f"/api/projects/{project_id}")
    project = r.json()["project"]
    assert project["matchedItems"] == final["matchesFound"]
    assert project["unmatchedItems"] == 150 - final["matchesFound"]

    # a second job only sees what is still unmatched
    second = await create_job(client, project_id)
    assert second["totalItems"] == 150 - final["matchesFound"]


async def test_process_message_and_matches_pages(client: httpx.AsyncClient) -> None:
    project_id = await _project_with_data(client, 60)
    job = await create_job(client, project_id, {"chunkSize": 100})
    body = await process_chunk(client, job["id"])
    assert body["success"] is True
    assert body["message"].startswith("Processed 75 items, ")
    found = body["job"]["matchesFound"]

    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/api/jobs/{job['id']}/matches", params=params)).json()
        seen += page["matches"]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == found
    assert len({m["itemId"] for m in seen}) == found
    for m in seen:
        assert m["itemId"].startswith("i")
        assert m["catalogId"] == "c" + m["itemId"][1:]
        assert 0 <= m["score"] <= 1
        assert m["method"] in ("exact", "code", "fuzzy")
        assert m["reason"]
        assert m["itemText"] and m["catalogText"]

    r = await client.get(f"/api/jobs/{job['id']}/matches", params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [*rows[0]] == [
        "item_id",
        "item_text",
        "catalog_id",
        "catalog_text",
        "score",
        "method",
        "reason",
        "reviewed",
    ]
    assert {r["reviewed"] for r in rows} == {"false"}  # no reviewer has decided any
    assert len(rows) == found
    assert {r["item_id"] for r in rows} == {m["itemId"] for m in seen}


async def test_list_patch_and_cancel(client: httpx.AsyncClient) -> None:
    project_id = await _project_with_data(client, 40)
    first = await create_job(client, project_id, {"chunkSize": 10})
    r = await client.post("/api/jobs/create", json={"projectId": project_id, "jobType": "enhanced"})
    assert r.status_code == 409  # one live job per (project, job type)
    assert r.json()["error"]["details"]["existingJobId"] == first["id"]

    r = await client.patch(
        f"/api/jobs/{first['id']}", json={"status": "failed", "error": "stuck, marked by hand"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["job"]["status"] == "failed"
    assert r.json()["job"]["error"] == "stuck, marked by hand"
    assert r.json()["job"]["completedAt"] is not None
    r = await client.post(f"/api/jobs/{first['id']}/process")
    assert r.json()["job"]["processedItems"] == 0  # a failed job is never advanced
    r = await client.patch(f"/api/jobs/{first['id']}", json={"status": "cancelled"})
    assert r.status_code == 409

    second = await create_job(client, project_id, {"chunkSize": 10})
    r = await client.get("/api/jobs", params={"projectId": project_id})
    assert [j["id"] for j in r.json()["jobs"]] == [second["id"], first["id"]]  # newest first

    await process_chunk(client, second["id"])
    r = await client.post(f"/api/jobs/{second['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["job"]["status"] == "cancelled"
    r = await client.post(f"/api/jobs/{second['id']}/process")
    assert r.json()["job"]["processedItems"] == 10  # cancelled: not advanced further
    assert "cancelled" in r.json()["message"]
    r = await client.post(f"/api/jobs/{second['id']}/resume")
    assert r.status_code == 409


async def test_empty_job_completes(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    await upload(client, project_id, "catalog", products(5))
    await upload(client, project_id, "items", [{"id": "a", "name": products(1)[0]["name"]}])
    await drive(client, (await create_job(client, project_id))["id"])
    job = await create_job(client, project_id)  # nothing left unmatched
    assert job["totalItems"] == 0
    snapshots = await drive(client, job["id"])
    assert snapshots[-1]["status"] == "completed"
    assert snapshots[-1]["progressPercentage"] == 100


async def test_concurrent_process_calls_never_repeat_or_lose_a_chunk(
    client: httpx.AsyncClient, live_server
) -> None:
    project_id = await _project_with_data(client, 400)
    job = await create_job(client, project_id, {"chunkSize": 20})
    total = job["totalItems"]
    seen_processed: list[int] = []

    async def driver() -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            r = await client.post(f"/api/jobs/{job['id']}/process")
            assert r.status_code == 200, r.text
            state = r.json()["job"]
            seen_processed.append(state["processedItems"])
            if state["status"] == "completed":
                return
            if "another driver" in r.json()["message"]:
                await asyncio.sleep(0.02)  # every remaining chunk is taken: poll politely

    await asyncio.gather(*(driver() for _ in range(8)))
    final = (await client.get(f"/api/jobs/{job['id']}")).json()["job"]
    assert final["status"] == "completed"
    assert final["processedItems"] == total

    conn = await asyncpg.connect(live_server.dsn)
    try:
        chunks = await conn.fetch(
            "SELECT ord_from, ord_to, status, items FROM job_chunks WHERE job_id = $1 "
            "ORDER BY ord_from",
            uuid.UUID(job["id"]),
        )
        matches = await conn.fetchval(
            "SELECT count(*) FROM matches WHERE job_id = $1", uuid.UUID(job["id"])
        )
        dupes = await conn.fetchval(
            "SELECT count(*) FROM (SELECT item_id FROM matches WHERE job_id = $1 "
            "GROUP BY item_id HAVING count(*) > 1) d",
            uuid.UUID(job["id"]),
        )
    finally:
        await conn.close()
    # the chunks tile 0..total exactly once, all done
    assert [c["status"] for c in chunks] == ["done"] * len(chunks)
    assert chunks[0]["ord_from"] == 0 and chunks[-1]["ord_to"] == total
    assert all(a["ord_to"] == b["ord_from"] for a, b in zip(chunks, chunks[1:], strict=False))
    assert sum(c["items"] for c in chunks) == total
    assert dupes == 0
    assert matches == final["matchesFound"]


async def _project_with(
    client: httpx.AsyncClient, *, catalog: list[dict], items: list[dict]
) -> str:
    """A new project holding these catalog records and items."""
    project_id = await create_project(client)
    await upload(client, project_id, "catalog", catalog)
    await upload(client, project_id, "items", items)
    return project_id


async def test_one_to_one_uses_each_catalog_record_once_best_score_wins(
    client: httpx.AsyncClient,
) -> None:
    project_id = await _project_with(
        client,
        catalog=[
            {"id": "c1", "name": "Sony Bravia KDL-40W600 40 inch LED television"},
            {"id": "c2", "name": "Canon PIXMA MG3620 wireless inkjet printer"},
        ],
        items=[
            # two items want c1; the second, exact one must win even in a later chunk
            {"id": "a", "name": "Sony Bravia KDL-40W600 40 inch LED TV"},
            {"id": "b", "name": "Canon PIXMA MG3620 wireless inkjet printer"},
            {"id": "c", "name": "Sony Bravia KDL-40W600 40 inch LED television"},
        ],
    )
    job = await create_job(client, project_id, {"oneToOne": True, "chunkSize": 2})
    final = (await drive(client, job["id"]))[-1]
    page = (await client.get(f"/api/jobs/{job['id']}/matches")).json()["matches"]
    pairs = {m["itemId"]: m["catalogId"] for m in page}
    assert pairs == {"b": "c2", "c": "c1"}
    assert final["matchesFound"] == 2 and final["processedItems"] == 3
    r = await client.post(
        "/api/jobs/create",
        json={"projectId": project_id, "jobType": "enhanced", "config": {"oneToOne": "yes"}},
    )
    assert r.status_code == 422


async def test_matches_explain_their_scores_and_items_show_their_candidates(
    client: httpx.AsyncClient,
) -> None:
    project_id = await _project_with(
        client,
        catalog=[
            {"id": "c1", "name": "Sony Bravia KDL-40W600 40 inch LED television"},
            {"id": "c2", "name": "Sony Bravia KDL-32W600 32 inch LED television"},
            {"id": "c3", "name": "Canon PIXMA MG3620 wireless inkjet printer"},
        ],
        items=[
            {"id": "a", "name": "Sony KDL-40W600 Bravia 40in LED TV"},
            {"id": "b", "name": "Canon PIXMA MG3620 wireless inkjet printer"},
        ],
    )
    job = await create_job(client, project_id)
    await drive(client, job["id"])
    page = (await client.get(f"/api/jobs/{job['id']}/matches")).json()["matches"]
    by_item = {m["itemId"]: m for m in page}
    assert by_item["b"]["method"] == "exact"
    assert [e["signal"] for e in by_item["b"]["explanation"]] == ["normalised_text_identical"]
    fuzzy = by_item["a"]
    assert fuzzy["catalogId"] == "c1"
    logit = sum(e["contribution"] for e in fuzzy["explanation"])
    assert abs(1 / (1 + math.exp(-logit)) - fuzzy["score"]) < 2e-3
    assert {"signal", "value", "contribution"} == set(fuzzy["explanation"][0])

    r = await client.get(f"/api/jobs/{job['id']}/items/a/candidates")
    assert r.status_code == 200, r.text
    candidates = r.json()["candidates"]
    assert [c["catalogId"] for c in candidates][:2] == ["c1", "c2"]
    assert candidates[0]["score"] == fuzzy["score"]  # scored as the job's stage scored it
    assert candidates[0]["catalogText"].startswith("Sony Bravia KDL-40W600")
    assert candidates[0]["explanation"]
    assert [c["score"] for c in candidates] == sorted(
        (c["score"] for c in candidates), reverse=True
    )
    assert (
        len(
            (await client.get(f"/api/jobs/{job['id']}/items/a/candidates?k=1")).json()["candidates"]
        )
        == 1
    )
    missing = await client.get(f"/api/jobs/{job['id']}/items/nope/candidates")
    assert missing.status_code == 404
    assert (await client.get(f"/api/jobs/{job['id']}/items/a/candidates?k=0")).status_code == 422


async def test_one_to_one_offers_a_displaced_item_its_next_best_candidate(
    client: httpx.AsyncClient,
) -> None:
    project_id = await _project_with(
        client,
        catalog=[
            {"id": "x", "name": "Sony Bravia KDL-40W600 40 inch LED television"},
            {"id": "y", "name": "Sony Bravia KDL-40W600 LED television 40 inch"},
            {"id": "p", "name": "Canon PIXMA MG3620 wireless inkjet printer"},
        ],
        items=[
            # a's best is x, which d (an exact copy, in a later chunk) takes from it:
            # a then falls back on y, its next candidate, which clears the threshold
            {"id": "a", "name": "Sony Bravia KDL-40W600 40 inch LED television set"},
            {"id": "b", "name": "Canon PIXMA MG3620 wireless inkjet printer"},
            {"id": "d", "name": "Sony Bravia KDL-40W600 40 inch LED television"},
        ],
    )
    job = await create_job(client, project_id, {"oneToOne": True, "chunkSize": 2})
    final = (await drive(client, job["id"]))[-1]
    page = (await client.get(f"/api/jobs/{job['id']}/matches")).json()["matches"]
    pairs = {m["itemId"]: m["catalogId"] for m in page}
    assert pairs == {"a": "y", "b": "p", "d": "x"}
    assert final["status"] == "completed"
    assert final["matchesFound"] == 3 and final["processedItems"] == 3
    assert final["progressPercentage"] == 100

"""GET /api/jobs/{id}/chunks over real HTTP: a job's chunks in order, with the ETA each gave."""

from __future__ import annotations

import httpx

from tests.e2e.helpers import create_job, create_project, drive, products, upload


async def test_a_jobs_chunks_in_order_with_their_etas_and_pages(
    client: httpx.AsyncClient,
) -> None:
    project_id = await create_project(client)
    catalog = products(50, "c")
    await upload(client, project_id, "catalog", catalog)
    items = [{"id": f"i{k}", "name": r["name"]} for k, r in enumerate(catalog)]
    await upload(client, project_id, "items", items)
    job = await create_job(client, project_id, {"chunkSize": 10})
    assert (await client.get(f"/api/jobs/{job['id']}/chunks")).json()["chunks"] == []
    await drive(client, job["id"])

    r = await client.get(f"/api/jobs/{job['id']}/chunks")
    assert r.status_code == 200
    chunks = r.json()["chunks"]
    assert [c["seq"] for c in chunks] == [1, 2, 3, 4, 5]
    assert [c["processedItems"] for c in chunks] == [10, 20, 30, 40, 50]
    assert all(c["status"] == "done" and c["items"] == 10 for c in chunks)
    assert all(c["etaSeconds"] is not None and c["durationMs"] is not None for c in chunks)
    assert r.json()["nextCursor"] is None

    first = (await client.get(f"/api/jobs/{job['id']}/chunks", params={"limit": 2})).json()
    assert [c["seq"] for c in first["chunks"]] == [1, 2]
    rest = await client.get(f"/api/jobs/{job['id']}/chunks", params={"cursor": first["nextCursor"]})
    assert [c["seq"] for c in rest.json()["chunks"]] == [3, 4, 5]


async def test_bad_paging_is_a_clear_422(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    await upload(client, project_id, "catalog", products(3, "c"))
    await upload(client, project_id, "items", products(3, "i"))
    job = await create_job(client, project_id)
    for params in ({"limit": 0}, {"limit": "many"}, {"cursor": "-1"}):
        r = await client.get(f"/api/jobs/{job['id']}/chunks", params=params)
        assert r.status_code == 422, params
        assert r.json()["error"]["code"] == "validation_error"

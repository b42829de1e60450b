"""Deleting data: a project with everything that names it, one item, one catalog record, and
``chunkmatch project delete`` (issue 14, item 13)."""

from __future__ import annotations

import subprocess
import uuid

import asyncpg
import httpx

from tests.e2e.helpers import create_job, create_project, drive, products, upload
from tests.e2e.processes import CHUNKMATCH, process_env


async def _matched_project(client: httpx.AsyncClient, name: str) -> tuple[str, dict]:
    """A project of 20 items matched to 20 catalog records by a completed job."""
    pid = await create_project(client, name)
    await upload(client, pid, "catalog", products(20, "c"))
    await upload(client, pid, "items", products(20, "i"))
    job = (await drive(client, (await create_job(client, pid))["id"]))[-1]
    assert job["matchesFound"] == 20
    return pid, job


async def _rows_naming(dsn: str, pid: str, job_ids: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        p, jobs = uuid.UUID(pid), [uuid.UUID(j) for j in job_ids]
        counts = {}
        for table in ("projects", "catalog_records", "items", "matching_jobs", "matches"):
            column = "id" if table == "projects" else "project_id"
            counts[table] = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE {column} = $1", p
            )
        for table in ("job_items", "job_chunks"):
            counts[table] = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE job_id = ANY($1::uuid[])", jobs
            )
        return counts
    finally:
        await conn.close()


async def _item_rows(dsn: str, pid: str, column: str, record_id: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        p = uuid.UUID(pid)
        table = "items" if column == "item_id" else "catalog_records"
        own = "item_id" if column == "item_id" else "record_id"
        return {
            table: await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE project_id = $1 AND {own} = $2", p, record_id
            ),
            "matches": await conn.fetchval(
                f"SELECT count(*) FROM matches WHERE project_id = $1 AND {column} = $2",
                p,
                record_id,
            ),
            "job_items": await conn.fetchval(
                "SELECT count(*) FROM job_items ji JOIN matching_jobs j ON j.id = ji.job_id "
                "WHERE j.project_id = $1 AND ji.item_id = $2",
                p,
                record_id,
            )
            if column == "item_id"
            else 0,
        }
    finally:
        await conn.close()


async def test_deleting_a_project_removes_everything_that_names_it(
    client: httpx.AsyncClient, live_server
) -> None:
    pid, done = await _matched_project(client, "doomed")
    await upload(client, pid, "catalog", [{"id": "c1", "name": "a new version"}])
    live = await create_job(client, pid, {"threshold": 0.9})
    assert (await _rows_naming(live_server.dsn, pid, [done["id"], live["id"]]))["matches"] == 20

    r = await client.delete(f"/api/projects/{pid}")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["details"]["liveJobIds"] == [live["id"]]
    other = httpx.Headers(live_server.headers(live_server.other_token))
    assert (await client.delete(f"/api/projects/{pid}", headers=other)).status_code == 404

    r = await client.delete(f"/api/projects/{pid}", params={"force": "true"})
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"/api/projects/{pid}")).status_code == 404
    for job in (done, live):
        assert (await client.get(f"/api/jobs/{job['id']}")).status_code == 404
        assert (await client.get(f"/api/jobs/{job['id']}/matches")).status_code == 404
    left = await _rows_naming(live_server.dsn, pid, [done["id"], live["id"]])
    assert set(left.values()) == {0}, left
    assert (await client.delete(f"/api/projects/{pid}")).status_code == 404


async def test_deleting_an_item_removes_it_and_its_matches(
    client: httpx.AsyncClient, live_server
) -> None:
    pid, job = await _matched_project(client, "delete an item")
    other = httpx.Headers(live_server.headers(live_server.other_token))
    assert (await client.delete(f"/api/projects/{pid}/items/i3", headers=other)).status_code == 404
    r = await client.delete(f"/api/projects/{pid}/items/i3")
    assert r.status_code == 204, r.text
    project = (await client.get(f"/api/projects/{pid}")).json()["project"]
    assert (project["itemCount"], project["matchedItems"], project["unmatchedItems"]) == (19, 19, 0)
    after = (await client.get(f"/api/jobs/{job['id']}")).json()["job"]
    assert after["matchesFound"] == 19
    matches = (await client.get(f"/api/jobs/{job['id']}/matches")).json()["matches"]
    assert "i3" not in {m["itemId"] for m in matches} and len(matches) == 19
    assert set((await _item_rows(live_server.dsn, pid, "item_id", "i3")).values()) == {0}
    assert (await client.delete(f"/api/projects/{pid}/items/i3")).status_code == 404
    assert (await client.delete(f"/api/projects/{pid}/items/nope")).status_code == 404


async def test_deleting_a_catalog_record_unmatches_its_items(
    client: httpx.AsyncClient, live_server
) -> None:
    pid, job = await _matched_project(client, "delete a record")
    r = await client.delete(f"/api/projects/{pid}/catalog/c5")
    assert r.status_code == 204, r.text
    project = (await client.get(f"/api/projects/{pid}")).json()["project"]
    assert (project["catalogCount"], project["matchedItems"], project["unmatchedItems"]) == (
        19,
        19,
        1,
    )
    assert (await client.get(f"/api/jobs/{job['id']}")).json()["job"]["matchesFound"] == 19
    assert set((await _item_rows(live_server.dsn, pid, "catalog_id", "c5")).values()) == {0}
    # the next job takes the item up again, against the catalog without the record
    again = await create_job(client, pid)
    assert again["totalItems"] == 1
    await drive(client, again["id"])
    matches = (await client.get(f"/api/jobs/{again['id']}/matches")).json()["matches"]
    assert all(m["catalogId"] != "c5" for m in matches)
    assert (await client.delete(f"/api/projects/{pid}/catalog/c5")).status_code == 404


async def test_the_cli_deletes_a_project(client: httpx.AsyncClient, live_server) -> None:
    pid, _ = await _matched_project(client, "cli delete")
    await upload(client, pid, "items", [{"id": "new", "name": "something new"}])
    await create_job(client, pid)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CHUNKMATCH, "project", "delete", *args],
            env=process_env(live_server.dsn),
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = cli(pid)
    assert refused.returncode == 1 and "unfinished job" in refused.stderr
    assert (await client.get(f"/api/projects/{pid}")).status_code == 200
    done = cli(pid, "--force")
    assert done.returncode == 0, done.stderr
    assert (await client.get(f"/api/projects/{pid}")).status_code == 404
    missing = cli(pid)
    assert missing.returncode == 1 and "no project" in missing.stderr

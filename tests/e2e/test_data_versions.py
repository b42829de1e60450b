"""A job sees one version of its data: uploads during a live job affect later jobs only, a
record whose matched text changes loses its match, and a job's matches stay readable as
they were (issue 14, items 1-3)."""

from __future__ import annotations

import httpx

from tests.e2e.helpers import create_job, create_project, drive, process_chunk, products, upload


async def _matches(client: httpx.AsyncClient, job_id: str) -> dict[str, dict]:
    r = await client.get(f"/api/jobs/{job_id}/matches", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return {m["itemId"]: m for m in r.json()["matches"]}


async def _project(client: httpx.AsyncClient, pid: str) -> dict:
    r = await client.get(f"/api/projects/{pid}")
    assert r.status_code == 200, r.text
    return r.json()["project"]


def _rotated(records: list[dict], by: int) -> list[dict]:
    """The same ids, each with the name of the record ``by`` places further on."""
    names = [r["name"] for r in records]
    return [{**r, "name": names[(n + by) % len(names)]} for n, r in enumerate(records)]


async def test_uploads_during_a_job_do_not_mix_into_it(client: httpx.AsyncClient) -> None:
    pid = await create_project(client, "versions")
    catalog, items = products(40, "c"), products(40, "i")
    await upload(client, pid, "catalog", catalog)
    await upload(client, pid, "items", items)
    job = await create_job(client, pid, {"chunkSize": 10})
    assert (job["catalogVersion"], job["itemsVersion"]) == (1, 1)
    assert (await process_chunk(client, job["id"]))["job"]["processedItems"] == 10

    # mid-job, both sides change: the catalog's names rotate, the items' names rotate too
    assert (await upload(client, pid, "catalog", _rotated(catalog, 1)))["updated"] == 40
    await upload(client, pid, "items", _rotated(items, 7))
    done = (await drive(client, job["id"]))[-1]
    assert done["status"] == "completed"
    assert (done["catalogVersion"], done["itemsVersion"]) == (1, 1)

    # every item matched against the catalog as it was when the job was created, and the
    # export shows the texts the job matched (not today's)
    matches = await _matches(client, job["id"])
    assert len(matches) == 40
    for n in range(40):
        m = matches[f"i{n}"]
        assert m["catalogId"] == f"c{n}", m
        assert m["itemText"] == items[n]["name"] == m["catalogText"], m

    # the upload affects later jobs: every item's text changed, so every item is unmatched
    # again and a new job matches the new texts against the new catalog
    assert (await _project(client, pid))["matchedItems"] == 0
    again = await create_job(client, pid)
    assert again["totalItems"] == 40
    assert (again["catalogVersion"], again["itemsVersion"]) == (2, 2)
    await drive(client, again["id"])
    for n, m in (await _matches(client, again["id"])).items():
        k = int(n[1:])
        assert m["catalogId"] == f"c{(k + 6) % 40}", m  # item name k+7 = catalog name of k+6
    # the first job's export is unchanged
    assert (await _matches(client, job["id"]))["i3"]["itemText"] == items[3]["name"]


async def test_a_record_whose_text_changes_loses_its_match(client: httpx.AsyncClient) -> None:
    pid = await create_project(client, "stale matches")
    catalog = [{**r, "price": 10} for r in products(20, "c")]
    items = [{**r, "note": "a"} for r in products(20, "i")]
    await upload(client, pid, "catalog", catalog)
    await upload(client, pid, "items", items)
    first = await create_job(client, pid)
    await drive(client, first["id"])
    assert (await _project(client, pid))["matchedItems"] == 20

    # unchanged records, or changes outside the matched fields, keep their matches
    await upload(client, pid, "items", [items[0], {**items[1], "note": "b"}])
    await upload(client, pid, "catalog", [{**catalog[2], "price": 11}])
    assert (await _project(client, pid))["matchedItems"] == 20

    # item 5's text changes; catalog record 9's text changes: items 5 and 9 are unmatched
    await upload(client, pid, "items", [{**items[5], "name": "Completely different thing 1"}])
    await upload(client, pid, "catalog", [{**catalog[9], "name": "Another unrelated record 2"}])
    project = await _project(client, pid)
    assert (project["matchedItems"], project["unmatchedItems"]) == (18, 2)
    second = await create_job(client, pid)
    assert second["totalItems"] == 2

    # the first job's matches stay readable as they were
    old = await _matches(client, first["id"])
    assert old["i5"]["itemText"] == items[5]["name"]
    assert old["i9"]["catalogText"] == catalog[9]["name"]
    await drive(client, second["id"])
    assert (await _project(client, pid))["itemCount"] == 20


async def _one_chunk_done(client: httpx.AsyncClient, name: str, config: dict) -> tuple:
    """A project of 20 catalog records and 20 items that match them, and a job of chunks
    of 5 that has done its first chunk."""
    pid = await create_project(client, name)
    items = products(20, "i")
    await upload(client, pid, "catalog", products(20, "c"))
    await upload(client, pid, "items", items)
    job = await create_job(client, pid, {"chunkSize": 5, **config})
    await process_chunk(client, job["id"])
    return pid, items, job


async def test_a_match_made_on_data_changed_meanwhile_is_stale(client: httpx.AsyncClient) -> None:
    pid, items, job = await _one_chunk_done(client, "stale at commit", {})
    # item 15 (in a later chunk) changes while the job runs: the job matches its old text,
    # and that match does not count as the item's current match
    await upload(client, pid, "items", [{**items[15], "name": "Nothing like before 3"}])
    await drive(client, job["id"])
    assert (await _matches(client, job["id"]))["i15"]["catalogId"] == "c15"
    assert (await _project(client, pid))["matchedItems"] == 19
    assert (await create_job(client, pid))["totalItems"] == 1


async def test_a_job_keeps_its_columns_when_they_are_renamed(client: httpx.AsyncClient) -> None:
    pid, items, job = await _one_chunk_done(client, "renamed columns", {"itemFields": ["name"]})
    await upload(client, pid, "items", [{"id": r["id"], "title": r["name"]} for r in items])
    done = (await drive(client, job["id"]))[-1]
    assert done["matchesFound"] == 20  # its snapshot still has the column
    # a new job on a column no current item has is refused
    r = await client.post(
        "/api/jobs/create",
        json={"projectId": pid, "jobType": "enhanced", "config": {"itemFields": ["name"]}},
    )
    assert r.status_code == 422, r.text
    assert "name" in r.json()["error"]["message"]

"""Matches judged beside the job's other matches of their record (issue 10): when a job's
matching stage ends, a match that another item's better match makes too unlikely right is
withdrawn, whichever chunks the two were in, with exact counts, a row in
withdrawn_matches, the review queue asking about the item as unmatched, and the same
matches as the library's over the whole job."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from matching import DEFAULT_THRESHOLD, CatalogIndex
from matching.claims import SHARED_CLAIMS_FLOOR, contested_chance
from tests.e2e.helpers import create_job, create_project, drive, products, upload
from tests.e2e.test_review import decide, job, match_rows, whole_queue

DESK = "Acme deluxe walnut writing desk large"


def contested_set() -> tuple[list[dict], list[dict]]:
    """40 records and their own texts as items (exact matches, each on its own record), a
    desk, and two items claiming it: ``weak`` (a fuzzy match, first in the items) and
    ``exact`` (the record's own text, last)."""
    catalog = products(40) + [{"id": "desk", "name": DESK}]
    items = [{"id": "weak", "name": "Acme walnut writing desk"}]
    items += [{"id": f"i{r['id']}", "name": r["name"]} for r in catalog[:40]]
    items.append({"id": "exact", "name": DESK})
    return catalog, items


async def withdrawn_rows(dsn: str, job_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT * FROM withdrawn_matches WHERE job_id = $1 ORDER BY item_id",
            uuid.UUID(job_id),
        )
    finally:
        await conn.close()


async def run_job(
    client: httpx.AsyncClient,
    name: str,
    items: list[dict],
    config: dict,
    catalog: list[dict] | None = None,
) -> tuple[str, str, dict[str, dict]]:
    """A project of ``catalog`` (:func:`contested_set`'s by default) and ``items``, its job
    with ``config`` run to the end: the project's id, the job's, and its matches."""
    pid = await create_project(client, name)
    await upload(client, pid, "catalog", catalog or contested_set()[0])
    await upload(client, pid, "items", items)
    created = await create_job(client, pid, config)
    await drive(client, created["id"])
    return pid, created["id"], await match_rows(client, created["id"])


async def test_a_weak_match_beside_a_sure_one_of_its_record_is_withdrawn_at_the_end(
    client: httpx.AsyncClient, live_server
) -> None:
    catalog, items = contested_set()
    # the weak claim's chunk commits long before the sure one's
    pid, job_id, matches = await run_job(client, "withdrawn", items, {"chunkSize": 5})
    created = {"id": job_id}
    assert matches["exact"]["catalogId"] == "desk"
    assert "weak" not in matches, matches.get("weak")
    rows = await withdrawn_rows(live_server.dsn, created["id"])
    assert [r["item_id"] for r in rows] == ["weak"]
    (row,) = rows
    assert row["catalog_id"] == "desk" and row["method"] == "fuzzy" and row["stage"] == 1
    assert DEFAULT_THRESHOLD <= row["score"] < 1  # it was a match on its own
    # 2 of 42 matches share their record: the job's allowance is the floor
    expected = contested_chance(row["score"], [1.0], SHARED_CLAIMS_FLOOR)
    assert abs(row["chance"] - expected) < 1e-9 and row["chance"] < DEFAULT_THRESHOLD
    assert row["explanation"] and row["reason"]

    done = await job(client, created["id"])
    assert done["status"] == "completed"
    assert done["matchesFound"] == len(matches) == 41
    assert done["processedItems"] == done["totalItems"] == 42
    assert done["withdrawnMatches"] == 1

    # the review queue asks about it as an unmatched item
    pairs = {p["itemId"]: p for p in await whole_queue(client, created["id"])}
    p = pairs["weak"]
    assert not p["matched"] and p["catalogId"] == "desk" and p["explanation"]
    others = sum(c["score"] for c in p["candidates"][1:])
    assert abs(p["errorChance"] - min(1.0, row["chance"] + others)) < 1e-3

    # a decision about it keeps the chance it was withdrawn with, which learning fits
    r = await decide(
        client, created["id"], {"itemId": "weak", "catalogId": "desk", "decision": "no-match"}
    )
    assert r.status_code == 200, r.text
    conn = await asyncpg.connect(live_server.dsn)
    try:
        chance = await conn.fetchval(
            "SELECT proposed_chance FROM review_decisions WHERE project_id = $1 AND item_id = $2",
            uuid.UUID(pid),
            "weak",
        )
    finally:
        await conn.close()
    assert abs(chance - row["chance"]) < 1e-9

    # the library over the whole job decides the same
    index = CatalogIndex.build([(r["id"], r["name"]) for r in catalog])
    library = index.match([(i["id"], i["name"]) for i in items], threshold=DEFAULT_THRESHOLD)
    assert {r.item_id: r.catalog_id for r in library} == {
        i: m["catalogId"] for i, m in matches.items()
    }


async def test_the_outcome_does_not_depend_on_which_claim_came_first(
    client: httpx.AsyncClient, live_server
) -> None:
    """The sure claim first, the weak one last: the same matches, the same withdrawal."""
    items = contested_set()[1][::-1]
    _, job_id, matches = await run_job(client, "reversed", items, {"chunkSize": 5})
    assert "weak" not in matches and matches["exact"]["catalogId"] == "desk"
    assert [r["item_id"] for r in await withdrawn_rows(live_server.dsn, job_id)] == ["weak"]
    assert (await job(client, job_id))["matchesFound"] == len(matches) == 41


async def test_a_job_whose_items_repeat_an_article_keeps_both_matches(
    client: httpx.AsyncClient, live_server
) -> None:
    """When most of a job's matches share their record, its items repeat articles: the
    allowance follows, and a second claim is no sign of a wrong one."""
    items = contested_set()[1]
    # every record claimed twice: its own text and the same text again
    items = (
        items[:1] + [{"id": f"{i['id']}-again", "name": i["name"]} for i in items[1:]] + items[1:]
    )
    _, job_id, matches = await run_job(client, "repeats", items, {"chunkSize": 10})
    assert matches["weak"]["catalogId"] == "desk"
    assert await withdrawn_rows(live_server.dsn, job_id) == []
    done = await job(client, job_id)
    assert done["matchesFound"] == len(matches) == len(items) and done["withdrawnMatches"] == 0


async def test_one_to_one_jobs_are_left_to_their_own_rule(
    client: httpx.AsyncClient, live_server
) -> None:
    config = {"chunkSize": 5, "oneToOne": True}
    _, job_id, matches = await run_job(client, "one-to-one", contested_set()[1], config)
    assert matches["exact"]["catalogId"] == "desk"
    assert matches.get("weak", {}).get("catalogId") != "desk"  # the record went to the better
    assert await withdrawn_rows(live_server.dsn, job_id) == []


async def test_a_record_that_many_items_claim_for_sure_still_ends_its_job(
    client: httpx.AsyncClient, live_server
) -> None:
    """60 items that are the desk's own text (an article listed again and again) beside
    400 items matched each to a record of its own, and the weak claim: the others' chance
    of all being wrong, the product of 60 tiny ones, is far below the smallest float. The
    job ends (its last commit once failed with PostgreSQL's "value out of range: underflow",
    every retry alike, at a 1M job's end) and withdraws the weak claim, as the library does."""
    catalog = products(400) + [{"id": "desk", "name": DESK}]
    items = [{"id": "weak", "name": "Acme walnut writing desk"}]
    items += [{"id": f"i{r['id']}", "name": r["name"]} for r in catalog[:400]]
    items += [{"id": f"exact{k}", "name": DESK} for k in range(60)]
    _, job_id, matches = await run_job(client, "many claims", items, {"chunkSize": 50}, catalog)
    done = await job(client, job_id)
    assert done["status"] == "completed", done
    assert all(matches[f"exact{k}"]["catalogId"] == "desk" for k in range(60))
    assert "weak" not in matches
    assert [r["item_id"] for r in await withdrawn_rows(live_server.dsn, job_id)] == ["weak"]
    assert done["processedItems"] == done["totalItems"] == len(items)
    assert done["matchesFound"] == len(matches) == len(items) - 1
    assert done["withdrawnMatches"] == 1

    index = CatalogIndex.build([(r["id"], r["name"]) for r in catalog])
    library = index.match([(i["id"], i["name"]) for i in items], threshold=DEFAULT_THRESHOLD)
    assert {r.item_id: r.catalog_id for r in library} == {
        i: m["catalogId"] for i, m in matches.items()
    }

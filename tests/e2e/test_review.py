"""Human review (issue 11): the queue of a job's most uncertain decisions, decisions that
win over machines (during a running job, in later jobs, with concurrent deciders), whole
requests validated first, and a project's acceptance re-fitted from its decisions."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from typing import Any

import asyncpg
import httpx

from matching.review import contested_error_chance
from tests.e2e.helpers import create_job, create_project, drive, products, upload


def catalog_and_items(n: int = 60, prefix: str = "") -> tuple[list[dict], list[dict]]:
    """A catalog and items of which a third are the records' own texts (exact matches), a
    third a record's brand and kind only (weak), a third its code a letter off."""
    catalog = products(n, prefix)
    items = []
    for record in catalog:
        i = int(record["id"][len(prefix) :])
        name = record["name"]
        if i % 3 == 0:
            text = name
        elif i % 3 == 1:
            text = " ".join(name.split()[:2]) + f" {i % 13}"
        else:
            text = name.replace("X", "Y").split(" series")[0]
        items.append({"id": f"i{prefix}{i}", "name": text})
    return catalog, items


async def reviewed_project(client: httpx.AsyncClient, **config: Any) -> tuple[str, dict]:
    pid = await create_project(client, "review")
    catalog, items = catalog_and_items()
    await upload(client, pid, "catalog", catalog)
    await upload(client, pid, "items", items)
    return pid, await create_job(client, pid, config or None)


async def reviewed_job(client: httpx.AsyncClient) -> tuple[str, dict, list[dict]]:
    """A project, its job run to the end, and the job's whole review queue."""
    pid, created = await reviewed_project(client)
    await drive(client, created["id"])
    return pid, created, await whole_queue(client, created["id"])


async def queue(client: httpx.AsyncClient, job_id: str, **params: Any) -> dict:
    r = await client.get(f"/api/jobs/{job_id}/review", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def whole_queue(client: httpx.AsyncClient, job_id: str, limit: int = 7) -> list[dict]:
    pairs, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = await queue(client, job_id, **params)
        pairs += page["pairs"]
        cursor = page["nextCursor"]
        if cursor is None:
            return pairs


async def decide(client: httpx.AsyncClient, job_id: str, *decisions: dict) -> httpx.Response:
    return await client.post(f"/api/jobs/{job_id}/review", json={"decisions": list(decisions)})


async def match_rows(client: httpx.AsyncClient, job_id: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(f"/api/jobs/{job_id}/matches", params=params)
        assert r.status_code == 200, r.text
        for m in r.json()["matches"]:
            assert m["itemId"] not in rows, f"{m['itemId']} matched twice"
            rows[m["itemId"]] = m
        cursor = r.json()["nextCursor"]
        if cursor is None:
            return rows


async def job(client: httpx.AsyncClient, job_id: str) -> dict:
    r = await client.get(f"/api/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()["job"]


async def test_the_queue_asks_first_about_what_is_most_likely_wrong(
    client: httpx.AsyncClient,
) -> None:
    _, created = await reviewed_project(client)
    await drive(client, created["id"])
    matches = await match_rows(client, created["id"])
    pairs = await whole_queue(client, created["id"])
    assert pairs, "the weak items are uncertain"
    chances = [p["errorChance"] for p in pairs]
    assert chances == sorted(chances, reverse=True)
    assert len({p["itemId"] for p in pairs}) == len(pairs)  # pages neither overlap nor repeat
    assert pairs == (await queue(client, created["id"], limit=500))["pairs"]
    for p in pairs:
        assert set(p) >= {  # the names of the contract
            "itemId",
            "itemText",
            "catalogId",
            "catalogText",
            "score",
            "method",
            "reason",
            "explanation",
            "candidates",
        }
        assert p["method"] != "exact" and p["itemText"] and p["catalogText"]
        assert p["candidates"][0]["catalogId"] == p["catalogId"]
        assert all(c["catalogText"] for c in p["candidates"])
        if p["itemId"] in matches:  # a match: 1 - score, beside other matches of its record
            assert p["matched"] and matches[p["itemId"]]["catalogId"] == p["catalogId"]
            rivals = [
                m["score"]
                for i, m in matches.items()
                if m["catalogId"] == p["catalogId"] and i != p["itemId"]
            ]
            assert abs(p["errorChance"] - contested_error_chance(p["score"], rivals)) < 1e-3
            assert p["explanation"] == matches[p["itemId"]]["explanation"]
        else:  # unmatched: its best candidate, and the chance that some candidate is right
            assert not p["matched"] and p["explanation"]
            total = sum(c["score"] for c in p["candidates"])
            assert abs(p["errorChance"] - min(1.0, total)) < 1e-3
    exact = {i for i, m in matches.items() if m["method"] == "exact"}
    assert exact and not exact & {p["itemId"] for p in pairs}


async def test_two_items_matched_to_one_record_are_each_more_likely_wrong(
    client: httpx.AsyncClient, live_server
) -> None:
    """A match whose record is another item's match too is asked about before its own score
    says, the weaker claim first, and the decision keeps the chance the queue showed."""
    pid = await create_project(client, "contested")
    catalog = products(40) + [
        {"id": "r1", "name": "Acme deluxe walnut writing desk large"},
        {"id": "r2", "name": "Acme oak dining table round"},
    ]
    # "a" and "b" both match record r1, neither for sure; "c" alone matches r2
    items = [
        {"id": "a", "name": "Acme walnut writing desk"},
        {"id": "b", "name": "Acme deluxe walnut desk"},
        {"id": "c", "name": "Acme oak dining table"},
    ]
    await upload(client, pid, "catalog", catalog)
    await upload(client, pid, "items", items)
    created = await create_job(client, pid, {"threshold": 0.05})
    await drive(client, created["id"])
    matches = await match_rows(client, created["id"])
    assert matches["a"]["catalogId"] == matches["b"]["catalogId"] == "r1", matches
    assert matches["c"]["catalogId"] == "r2"
    pairs = {p["itemId"]: p for p in await whole_queue(client, created["id"])}
    a, b = matches["a"]["score"], matches["b"]["score"]
    assert a < 1 and b < 1, matches
    assert {"a", "b"} <= set(pairs), (matches, pairs)
    for item, own, rival in (("a", a, b), ("b", b, a)):
        shown = pairs[item]["errorChance"]
        assert shown > 1 - own + 0.05  # a rival makes it more likely wrong
        assert abs(shown - contested_error_chance(own, [rival])) < 1e-3  # shown to 4 places
    if "c" in pairs:  # an uncontested match keeps 1 - score
        assert abs(pairs["c"]["errorChance"] - (1 - matches["c"]["score"])) < 1e-3
    weaker = min(("a", "b"), key=lambda i: matches[i]["score"])
    order = [p["itemId"] for p in await whole_queue(client, created["id"])]
    assert order.index(weaker) < order.index("a" if weaker == "b" else "b")

    r = await decide(
        client, created["id"], {"itemId": weaker, "catalogId": "r1", "decision": "no-match"}
    )
    assert r.status_code == 200, r.text
    conn = await asyncpg.connect(live_server.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT proposed_score, proposed_chance FROM review_decisions"
            " WHERE project_id = $1 AND item_id = $2",
            uuid.UUID(pid),
            weaker,
        )
    finally:
        await conn.close()
    assert abs(row["proposed_score"] - matches[weaker]["score"]) < 1e-3
    assert abs(row["proposed_chance"] - (1 - pairs[weaker]["errorChance"])) < 1e-3
    # the weaker claim gone, the other match of the record is judged on its own again
    stronger = "a" if weaker == "b" else "b"
    left = {p["itemId"]: p for p in await whole_queue(client, created["id"])}
    assert weaker not in left
    assert abs(left[stronger]["errorChance"] - (1 - matches[stronger]["score"])) < 1e-3


async def test_decisions_change_the_job_and_leave_the_queue(client: httpx.AsyncClient) -> None:
    pid, created, pairs = await reviewed_job(client)
    jid = created["id"]
    before = await queue(client, jid, limit=1)
    assert (before["total"], before["decided"]) == (len(pairs), 0)
    matched = [p for p in pairs if p["matched"]]
    assert len(matched) >= 3
    other, wrong, none = matched[:3]
    elsewhere = next(c for c in other["candidates"] if c["catalogId"] != other["catalogId"])
    r = await decide(
        client,
        jid,
        {"itemId": other["itemId"], "catalogId": elsewhere["catalogId"], "decision": "match"},
        {"itemId": wrong["itemId"], "catalogId": wrong["catalogId"], "decision": "no-match"},
        {"itemId": none["itemId"], "catalogId": None, "decision": "no-match"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] and body["applied"] == 3
    assert body["calibration"]["labels"] == 3  # under 20: still the default
    assert body["calibration"]["threshold"] == created["config"]["threshold"]

    rows = await match_rows(client, jid)
    human = rows[other["itemId"]]
    assert (human["catalogId"], human["method"], human["score"]) == (
        elsewhere["catalogId"],
        "human",
        1.0,
    )
    assert human["reviewed"] and "alice" in human["reason"]
    assert wrong["itemId"] not in rows and none["itemId"] not in rows
    assert not any(m["reviewed"] for i, m in rows.items() if i != other["itemId"])
    assert (await job(client, jid))["matchesFound"] == len(rows)
    left = {p["itemId"] for p in await whole_queue(client, jid)}
    assert not left & {other["itemId"], wrong["itemId"], none["itemId"]}
    assert len(left) == len(pairs) - 3
    after = await queue(client, jid, limit=1)
    assert (after["total"], after["decided"]) == (len(pairs), 3)  # the counter's figures

    csv_text = (
        await client.get(f"/api/jobs/{jid}/matches", params={"format": "csv", "bom": "false"})
    ).text
    by_item = {r["item_id"]: r for r in csv.DictReader(io.StringIO(csv_text))}
    assert by_item[other["itemId"]]["reviewed"] == "true"
    assert {r["reviewed"] for i, r in by_item.items() if i != other["itemId"]} == {"false"}

    # deciding again replaces the decision: the item is decided once
    r = await decide(
        client, jid, {"itemId": other["itemId"], "catalogId": None, "decision": "no-match"}
    )
    assert r.status_code == 200 and r.json()["calibration"]["labels"] == 3
    rows = await match_rows(client, jid)
    assert other["itemId"] not in rows
    assert (await job(client, jid))["matchesFound"] == len(rows)
    project = (await client.get(f"/api/projects/{pid}")).json()["project"]
    assert project["calibration"]["labels"] == 3


async def test_deleting_a_record_forgets_the_decisions_about_it(client: httpx.AsyncClient) -> None:
    pid, created, pairs = await reviewed_job(client)
    jid = created["id"]
    matched, unmatched = pairs[0], pairs[1]
    r = await decide(
        client,
        jid,
        {"itemId": matched["itemId"], "catalogId": matched["catalogId"], "decision": "match"},
        {"itemId": unmatched["itemId"], "catalogId": None, "decision": "no-match"},
    )
    assert r.status_code == 200, r.text
    deleted = await client.delete(f"/api/projects/{pid}/catalog/{matched['catalogId']}")
    assert deleted.status_code == 204
    assert matched["itemId"] not in await match_rows(client, jid)
    # its item is undecided again: the next job takes it up; the other stays decided
    later = await create_job(client, pid)
    await drive(client, later["id"])
    r = await decide(client, later["id"], {"itemId": matched["itemId"], "decision": "no-match"})
    assert r.status_code == 200, r.text
    r = await decide(client, later["id"], {"itemId": unmatched["itemId"], "decision": "no-match"})
    assert r.status_code == 422 and repr(unmatched["itemId"]) in r.json()["error"]["message"]


async def test_a_bad_request_names_the_problem_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    _, created, pairs = await reviewed_job(client)
    jid = created["id"]
    good = {
        "itemId": pairs[0]["itemId"],
        "catalogId": pairs[0]["catalogId"],
        "decision": "no-match",
    }
    before = (await match_rows(client, jid), await job(client, jid))
    cases = [
        ({"itemId": "nope", "catalogId": None, "decision": "no-match"}, "'nope'"),
        ({"itemId": pairs[1]["itemId"], "catalogId": "ghost", "decision": "match"}, "'ghost'"),
        ({"itemId": pairs[1]["itemId"], "catalogId": None, "decision": "maybe"}, "'maybe'"),
        ({**good}, "decided twice"),
        ({"itemId": pairs[1]["itemId"], "catalogId": None, "decision": "match"}, "catalogId"),
        ({"itemId": pairs[1]["itemId"], "decision": "no-match", "extra": 1}, "extra"),
        ({"itemId": 5, "decision": "no-match"}, "itemId"),
    ]
    for bad, named in cases:
        r = await decide(client, jid, good, bad)
        assert r.status_code == 422, (bad, r.text)
        assert named in r.json()["error"]["message"], r.text
    for body in ({}, {"decisions": []}, {"decisions": "x"}, {"decisions": [good], "more": 1}):
        r = await client.post(f"/api/jobs/{jid}/review", json=body)
        assert r.status_code == 422, r.text
    r = await client.get(f"/api/jobs/{jid}/review", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422
    after = (await match_rows(client, jid), await job(client, jid))
    assert after[0] == before[0] and after[1]["matchesFound"] == before[1]["matchesFound"]
    assert await whole_queue(client, jid) == pairs  # nothing was decided


async def test_another_owner_sees_no_queue_and_decides_nothing(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers()) as c:
        _, created = await reviewed_project(c)
        await drive(c, created["id"])
        pair = (await queue(c, created["id"]))["pairs"][0]
    headers = live_server.headers(live_server.other_token)
    async with httpx.AsyncClient(base_url=live_server.url, headers=headers) as bob:
        assert (await bob.get(f"/api/jobs/{created['id']}/review")).status_code == 404
        r = await decide(bob, created["id"], {"itemId": pair["itemId"], "decision": "no-match"})
        assert r.status_code == 404


async def test_decisions_during_a_running_job_win_over_its_later_chunks(
    client: httpx.AsyncClient,
) -> None:
    pid, created = await reviewed_project(client, chunkSize=10)
    jid = created["id"]
    items = catalog_and_items()[1]
    # the first chunk is committed: the queue offers what it decided
    while (await job(client, jid))["processedItems"] < 10:
        assert (await client.post(f"/api/jobs/{jid}/process")).status_code == 200
    running = await job(client, jid)
    assert running["status"] == "processing" and running["processedItems"] < len(items)
    offered = (await queue(client, jid, limit=500))["pairs"]
    assert offered
    done_ids = {p["itemId"] for p in offered}
    # decide an offered item, and items of chunks not run yet: one matched by a human to
    # a record the machine would not pick, one said to have no counterpart (an exact one)
    later = [it["id"] for it in items[-10:]]
    decisions = [
        {"itemId": offered[0]["itemId"], "catalogId": None, "decision": "no-match"},
        {"itemId": later[0], "catalogId": "0", "decision": "match"},
        {"itemId": later[3], "catalogId": None, "decision": "no-match"},
    ]
    r = await decide(client, jid, *decisions)
    assert r.status_code == 200, r.text
    await drive(client, jid)
    finished = await job(client, jid)
    assert finished["status"] == "completed"
    rows = await match_rows(client, jid)
    assert finished["matchesFound"] == len(rows)
    assert offered[0]["itemId"] not in rows
    assert rows[later[0]]["method"] == "human" and rows[later[0]]["catalogId"] == "0"
    assert later[3] not in rows
    left = {p["itemId"] for p in await whole_queue(client, jid)}
    assert not left & {d["itemId"] for d in decisions}
    assert done_ids - {offered[0]["itemId"]} <= left | set(rows)

    # a later job of the project neither repeats nor overwrites a decided item
    catalog, more = catalog_and_items(12, prefix="n")
    await upload(client, pid, "items", items + more)
    second = await create_job(client, pid)
    await drive(client, second["id"])
    second_rows = await match_rows(client, second["id"])
    decided = {d["itemId"] for d in decisions}
    assert not decided & set(second_rows)
    second_queue = {p["itemId"] for p in await whole_queue(client, second["id"])}
    assert not decided & second_queue
    assert (await job(client, second["id"]))["matchesFound"] == len(second_rows)


async def test_concurrent_deciders_and_a_running_job_stay_exact(
    client: httpx.AsyncClient, live_server
) -> None:
    _, created = await reviewed_project(client, chunkSize=6)
    jid = created["id"]
    items = catalog_and_items()[1]

    async def driver() -> None:
        async with httpx.AsyncClient(
            base_url=live_server.url, headers=live_server.headers(), timeout=60
        ) as c:
            await drive(c, jid)

    async def decider(k: int) -> list[int]:
        """Deciders k and k + 2 decide the same items, one a match, the other no match."""
        statuses = []
        async with httpx.AsyncClient(
            base_url=live_server.url, headers=live_server.headers(), timeout=60
        ) as c:
            for n in range(k % 2, len(items), 2):
                decision: dict[str, Any] = {"itemId": items[n]["id"], "decision": "no-match"}
                if k < 2:
                    decision = {**decision, "catalogId": str((n + 1) % 60), "decision": "match"}
                statuses.append((await decide(c, jid, decision)).status_code)
        return statuses

    results = await asyncio.gather(driver(), *(decider(k) for k in range(4)))
    assert all(s == 200 for statuses in results[1:] for s in statuses)
    finished = await job(client, jid)
    assert finished["status"] == "completed"
    rows = await match_rows(client, jid)
    assert finished["matchesFound"] == len(rows)
    conn = await asyncpg.connect(live_server.dsn)
    try:
        kept = dict(
            await conn.fetch(
                "SELECT item_id, decision FROM review_decisions WHERE project_id = $1",
                uuid.UUID(created["projectId"]),
            )
        )
    finally:
        await conn.close()
    # every item decided once, and the job as its kept decision says: no machine match left
    assert set(kept) == {it["id"] for it in items}
    for item in items:
        n = int(item["id"][1:])
        row = rows.get(item["id"])
        if kept[item["id"]] == "match":
            assert row is not None and row["method"] == "human", row
            assert row["catalogId"] == str((n + 1) % 60)
        else:
            assert row is None, row
    assert (await queue(client, jid))["pairs"] == []


async def test_twenty_decisions_refit_the_projects_acceptance_for_its_next_jobs(
    client: httpx.AsyncClient,
) -> None:
    pid, created, pairs = await reviewed_job(client)
    jid = created["id"]
    matched = [p for p in pairs if p["matched"]]
    assert len(matched) >= 20
    # the weak matches the queue offers are all wrong: the acceptance should get stricter
    r = await decide(
        client,
        jid,
        *[{"itemId": p["itemId"], "catalogId": None, "decision": "no-match"} for p in matched],
    )
    assert r.status_code == 200, r.text
    calibration = r.json()["calibration"]
    assert calibration["labels"] == len(matched)
    assert calibration["threshold"] > created["config"]["threshold"]
    assert 0 <= calibration["estimatedPrecision"] <= 1
    assert 0 <= calibration["estimatedRecall"] <= 1
    project = (await client.get(f"/api/projects/{pid}")).json()["project"]
    assert project["calibration"] == calibration

    catalog, more = catalog_and_items(12, prefix="n")
    await upload(client, pid, "items", catalog_and_items()[1] + more)
    second = await create_job(client, pid)
    assert second["calibration"] == calibration
    assert second["config"]["threshold"] == calibration["threshold"]
    # a threshold the request sets wins, and the job says it used no calibration
    await drive(client, second["id"])
    third = await create_job(client, pid, {"threshold": 0.5})
    assert third["calibration"] is None and third["config"]["threshold"] == 0.5

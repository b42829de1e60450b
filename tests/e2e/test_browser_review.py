"""The review view in headless Chromium against the real service: keys and buttons decide
the job's uncertain pairs, undo takes back a decision not yet sent, the queue pages on,
a 4xx shows clearly, and a phone's width fits. Run on their own (``pytest -m browser``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import create_job, create_project, drive, upload
from tests.e2e.test_browser import CHROMIUM, SCREENSHOTS, TIMEOUT_MS
from tests.e2e.test_browser_dashboard import Browser

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing"),
]

BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay"]
PRODUCTS = ["Cordless Drill", "Claw Hammer", "Screwdriver Set", "Tape Measure", "Angle Grinder"]
COLOURS = ["Red", "Blue", "Black", "Yellow", "Green"]
PAIR = '[data-testid="review-pair"]'
DEADLINE_SECONDS = TIMEOUT_MS / 1000


def uncertain_data(n: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """A catalog and items whose matches are in doubt: a quarter reworded rows, a quarter
    near misses (another size and model), a quarter partial descriptions, a quarter
    things the catalog does not have."""
    catalog, items = [], []
    for i in range(n):
        brand = BRANDS[i % len(BRANDS)]
        product = PRODUCTS[(i // len(BRANDS)) % len(PRODUCTS)]
        colour = COLOURS[i % len(COLOURS)]
        size = 10 + (i % 17) * 5
        catalog.append({"id": f"C{i}", "name": f"{brand} {product} {size}mm {colour} Model {i}"})
        kind = i % 4
        if kind == 0:
            name = f"{brand.upper()} {product.lower()} {size}mm {colour.lower()} model {i}"
        elif kind == 1:
            name = f"{product} {size + 2}mm {colour} Model {i + 5000}"
        elif kind == 2:
            name = f"{brand} {product}"
        else:
            name = f"{brand} garden hose reel {i} metres"
        items.append({"id": f"U{i}", "name": name})
    return catalog, items


async def reviewable_job(client: httpx.AsyncClient, n: int = 80) -> tuple[str, str]:
    """A project over uncertain data and its completed default job: (project, job)."""
    project_id = await create_project(client, "review")
    catalog, items = uncertain_data(n)
    await upload(client, project_id, "catalog", catalog)
    await upload(client, project_id, "items", items)
    job = await create_job(client, project_id, {"chunkSize": 40})
    await drive(client, job["id"])
    return project_id, job["id"]


async def queue(client: httpx.AsyncClient, job_id: str, limit: int = 200) -> list[dict[str, Any]]:
    r = await client.get(f"/api/jobs/{job_id}/review", params={"limit": limit})
    assert r.status_code == 200, r.text
    return r.json()["pairs"]


async def matches(client: httpx.AsyncClient, job_id: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(f"/api/jobs/{job_id}/matches", params=params)).json()
        found.update({m["itemId"]: m for m in body["matches"]})
        cursor = body.get("nextCursor")
        if not cursor:
            return found


async def labels(client: httpx.AsyncClient, project_id: str) -> int:
    project = (await client.get(f"/api/projects/{project_id}")).json()["project"]
    return project["calibration"]["labels"]


async def until(condition, what: str):
    """Poll ``condition`` (an async callable) until it is truthy; fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


async def shown_item(page) -> str:
    await page.wait_for_selector(f"{PAIR}[data-item-id]")
    return await page.get_attribute(PAIR, "data-item-id")


async def wait_for_item(page, item_id: str) -> None:
    await page.wait_for_selector(f'{PAIR}[data-item-id="{item_id}"]')


def others(pair: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in pair["candidates"] if c["catalogId"] != pair["catalogId"]]


async def test_the_keyboard_decides_undoes_and_skips(live_server, client) -> None:
    project_id, job_id = await reviewable_job(client)
    pairs = await queue(client, job_id)
    assert len(pairs) >= 6, f"only {len(pairs)} uncertain pairs"
    assert pairs[0]["catalogId"] and pairs[1]["catalogId"]
    # the third pair is answered with its first other candidate: put one with candidates there
    with_others = next(i for i, p in enumerate(pairs) if i >= 2 and others(p))
    assert with_others < 10, "no pair with other candidates near the head of the queue"
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        page = b.page
        # reachable from the job view
        await b.open(f"#/jobs/{job_id}")
        await page.click('[data-testid="open-review"]')
        await page.wait_for_selector('[data-testid="review-view"]:not([hidden])')
        assert await page.is_hidden('[data-testid="job-view"]')
        counter = page.locator('[data-testid="review-counter"]')

        p = pairs
        await wait_for_item(page, p[0]["itemId"])
        # side by side with the differing words marked, the evidence as bars
        assert await page.locator('[data-testid="review-item"]').is_visible()
        assert await page.locator('[data-testid="review-record"]').is_visible()
        if p[0]["explanation"]:
            rows = page.locator('[data-testid="evidence-row"]')
            assert await rows.count() == len(p[0]["explanation"])
        item_box = await page.locator('[data-testid="review-item"]').bounding_box()
        record_box = await page.locator('[data-testid="review-record"]').bounding_box()
        assert record_box["x"] >= item_box["x"] + item_box["width"] - 1  # side by side
        heading = await page.text_content('[data-testid="review-record"] h3')
        assert ("Matched record" if p[0]["matched"] else "Best candidate") in heading
        assert f"{round(p[0]['errorChance'] * 100)} % likely wrong" in heading
        # the counter, and the project's calibration as GET /api/projects/{id} has it
        head = await client.get(f"/api/jobs/{job_id}/review", params={"limit": 1})
        total = head.json()["total"]  # the whole queue, not the pages loaded
        assert total >= len(pairs)
        assert await counter.inner_text() == f"0 of {total} uncertain reviewed"
        calibration = page.locator('[data-testid="review-calibration"]')
        await page.wait_for_selector('[data-testid="review-calibration"][data-labels="0"]')

        await page.keyboard.press("y")  # match the proposed record
        await wait_for_item(page, p[1]["itemId"])
        await page.keyboard.press("n")  # not this record
        # skip until the pair with other candidates, then choose candidate 1
        for skipped in p[2:with_others]:
            await wait_for_item(page, skipped["itemId"])
            await page.keyboard.press("s")
        chosen = p[with_others]
        await wait_for_item(page, chosen["itemId"])
        first_other = others(chosen)[0]["catalogId"]
        assert await page.get_attribute('[data-index="1"]', "data-catalog-id") == first_other
        await page.keyboard.press("1")
        nothing = p[with_others + 1]
        await wait_for_item(page, nothing["itemId"])
        await page.keyboard.press("0")  # no counterpart at all: held, then undone
        await wait_for_item(page, p[with_others + 2]["itemId"])
        await page.keyboard.press("u")
        await wait_for_item(page, nothing["itemId"])
        assert await counter.inner_text() == f"3 of {total} uncertain reviewed"
        await page.keyboard.press("s")
        await wait_for_item(page, p[with_others + 2]["itemId"])

        # y, n and 1 reached the server (each sent by the next decision); the undone 0 never did
        async def three_labels():
            return await labels(client, project_id) == 3

        await until(three_labels, "three decisions stored")
        found = await matches(client, job_id)
        assert found[p[0]["itemId"]]["catalogId"] == p[0]["catalogId"]
        assert found[p[0]["itemId"]]["method"] == "human"
        assert found.get(p[1]["itemId"], {}).get("catalogId") != p[1]["catalogId"]
        assert found[chosen["itemId"]]["catalogId"] == first_other
        assert found[chosen["itemId"]]["method"] == "human"
        offered = {pair["itemId"] for pair in await queue(client, job_id)}
        assert {p[0]["itemId"], p[1]["itemId"], chosen["itemId"]}.isdisjoint(offered)
        assert nothing["itemId"] in offered  # the undone decision left no trace
        if nothing["itemId"] in found:
            assert found[nothing["itemId"]]["method"] != "human"
        # the page shows the project's calibration after its decisions, as the server has it
        await page.wait_for_selector('[data-testid="review-calibration"][data-labels="3"]')
        project = (await client.get(f"/api/projects/{project_id}")).json()["project"]
        precision = project["calibration"]["estimatedPrecision"]
        assert precision is not None
        assert float(await calibration.get_attribute("data-precision")) == precision
        assert f"Estimated precision {precision * 100:.1f} %" in await calibration.inner_text()

        # the decision in hand is sent when the view is left
        last = p[with_others + 2]
        await page.keyboard.press("0")
        await page.click('text="Back to the job"')
        await page.wait_for_selector('[data-testid="job-view"]:not([hidden])')

        async def four_labels():
            return await labels(client, project_id) == 4

        await until(four_labels, "the held decision sent on leaving")
        assert last["itemId"] not in {pair["itemId"] for pair in await queue(client, job_id)}
        assert last["itemId"] not in await matches(client, job_id)
    assert not b.problems, b.problems


async def test_undo_of_a_sent_decision_brings_the_pair_back_to_decide_again(
    live_server, client
) -> None:
    project_id, job_id = await reviewable_job(client)
    p = await queue(client, job_id)
    assert len(p) >= 3 and p[0]["catalogId"]
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        page = b.page
        await b.open(f"#/jobs/{job_id}/review")
        await wait_for_item(page, p[0]["itemId"])
        await page.keyboard.press("y")
        await wait_for_item(page, p[1]["itemId"])
        await page.keyboard.press("s")
        await wait_for_item(page, p[2]["itemId"])

        # the held decision is sent after the undo window
        async def one_label():
            return await labels(client, project_id) == 1

        await until(one_label, "the held decision sent after its window")
        await page.keyboard.press("u")
        await wait_for_item(page, p[0]["itemId"])
        assert "A new decision replaces it" in await page.inner_text(
            '[data-testid="review-previous"]'
        )
        await page.keyboard.press("0")  # now: no counterpart
        await page.click('text="Back to the job"')

        async def replaced():
            found = await matches(client, job_id)
            return p[0]["itemId"] not in found

        await until(replaced, "the second decision replaced the first")
        assert await labels(client, project_id) == 1
    assert not b.problems, b.problems


async def test_a_refused_decision_shows_the_4xx_and_comes_back(live_server, client) -> None:
    project_id, job_id = await reviewable_job(client)
    p = await queue(client, job_id)
    assert len(p) >= 3
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        page = b.page

        async def unknown_item(route) -> None:
            if route.request.method != "POST":
                await route.continue_()
                return
            # the real server answers: the decision names an item the project lacks
            body = json.loads(route.request.post_data or "{}")
            for decision in body.get("decisions", []):
                decision["itemId"] = "no-such-item"
            await route.continue_(post_data=json.dumps(body))

        await page.route("**/api/jobs/*/review*", unknown_item)
        await b.open(f"#/jobs/{job_id}/review")
        await wait_for_item(page, p[0]["itemId"])
        await page.keyboard.press("0")
        await wait_for_item(page, p[1]["itemId"])
        await page.keyboard.press("s")  # a skip sends nothing
        await wait_for_item(page, p[2]["itemId"])
        await page.keyboard.press("0")  # sends the first: refused
        error = page.locator('[data-testid="review-error"]')
        await error.wait_for(state="visible")
        text = await error.inner_text()
        assert "no-such-item" in text and "HTTP 422" in text and p[0]["itemId"] in text
        await wait_for_item(page, p[0]["itemId"])  # back, to be decided again
        assert await labels(client, project_id) == 0

        await page.unroute("**/api/jobs/*/review*")
        await page.click('[data-action="none"]')  # the button does what 0 does
        assert await error.is_hidden()
        await page.click('text="Back to the job"')

        async def both():
            return await labels(client, project_id) == 2

        await until(both, "both decisions stored once the route is clear")
        offered = {pair["itemId"] for pair in await queue(client, job_id)}
        assert {p[0]["itemId"], p[2]["itemId"]}.isdisjoint(offered)
    assert not b.problems, b.problems


async def test_the_queue_loads_its_next_page_near_the_end(live_server, client) -> None:
    project_id, job_id = await reviewable_job(client, 240)
    every = await queue(client, job_id, limit=500)
    assert len(every) > 55, f"only {len(every)} uncertain pairs: the view pages by 50"
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        page = b.page
        cursors: list[str | None] = []
        page.on(
            "request",
            lambda r: (
                cursors.append(httpx.URL(r.url).params.get("cursor"))
                if r.method == "GET" and httpx.URL(r.url).path.endswith("/review")
                else None
            ),
        )
        await b.open(f"#/jobs/{job_id}/review")
        for pair in every[:52]:
            await wait_for_item(page, pair["itemId"])
            await page.keyboard.press("s")
        await wait_for_item(page, every[52]["itemId"])
        assert cursors[0] is None and len(cursors) >= 2 and all(cursors[1:])
        counter = await page.inner_text('[data-testid="review-counter"]')
        assert counter.startswith("0 of ") and "52 skipped" in counter
        assert await labels(client, project_id) == 0  # skips send nothing
    assert not b.problems, b.problems


async def test_on_a_phone_the_review_fits_and_works_by_touch(live_server, client) -> None:
    project_id, job_id = await reviewable_job(client)
    p = await queue(client, job_id)
    with_others = next(i for i, pair in enumerate(p) if i >= 1 and others(pair))
    async with Browser(
        live_server, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    ) as b:
        page = b.page
        await b.open(f"#/jobs/{job_id}/review")
        await wait_for_item(page, p[0]["itemId"])
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "review-phone.png"), full_page=True)
        # stacked, not side by side; every action a visible, finger-sized target
        item_box = await page.locator('[data-testid="review-item"]').bounding_box()
        record_box = await page.locator('[data-testid="review-record"]').bounding_box()
        assert record_box["y"] >= item_box["y"] + item_box["height"] - 1
        for action in ("match", "no-match", "none", "skip", "undo"):
            button = page.locator(f'[data-testid="review-actions"] [data-action="{action}"]')
            assert await button.is_visible(), action
            box = await button.bounding_box()
            assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= 390
        await page.tap('[data-testid="review-actions"] [data-action="match"]')
        for skipped in p[1:with_others]:
            await wait_for_item(page, skipped["itemId"])
            await page.tap('[data-action="skip"]')
        await wait_for_item(page, p[with_others]["itemId"])
        await page.tap('[data-action="candidate"][data-index="1"]')
        await wait_for_item(page, p[with_others + 1]["itemId"])
        await page.tap('[data-action="undo"]')
        await wait_for_item(page, p[with_others]["itemId"])
        await page.tap('[data-action="skip"]')
        await page.click('text="Back to the job"')

        async def one():
            return await labels(client, project_id) == 1

        await until(one, "the tapped match stored, the undone candidate not")
        assert (await matches(client, job_id))[p[0]["itemId"]]["method"] == "human"
    assert not b.problems, b.problems

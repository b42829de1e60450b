"""The dashboard and the job view in headless Chromium: deep links, filters, controls, and
live bars for jobs driven over the API. Run on their own (``pytest -m browser``)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.helpers import create_job, create_project, drive, process_chunk, products, upload
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing"),
]


async def _project(client: httpx.AsyncClient, n: int, name: str = "dashboard") -> str:
    project_id = await create_project(client, name)
    catalog = products(n, "c")
    await upload(client, project_id, "catalog", catalog)
    items = [{"id": f"i{k}", "name": r["name"]} for k, r in enumerate(catalog)]
    await upload(client, project_id, "items", items)
    return project_id


class Browser:
    """A signed-in Chromium page; page errors and console errors are collected."""

    def __init__(self, live_server, **page_options) -> None:
        self.live_server = live_server
        self.page_options = page_options
        self.problems: list[str] = []

    async def __aenter__(self):
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        self.browser = await self._pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = await self.browser.new_page(**self.page_options)
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        token = self.live_server.token
        await page.add_init_script(f"localStorage.setItem('chunkmatch.token', {token!r})")
        self.page = page
        return self

    async def __aexit__(self, *exc) -> None:
        await self.browser.close()
        await self._pw.stop()

    async def open(self, fragment: str) -> None:
        await self.page.goto(f"{self.live_server.url}/{fragment}")
        await self.page.wait_for_selector('body[data-ready="true"]')


async def test_a_deep_link_opens_the_job_view_with_its_charts(live_server, client) -> None:
    project_id = await _project(client, 60)
    job = await create_job(client, project_id, {"chunkSize": 10})
    await drive(client, job["id"])
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        await b.open(f"#/jobs/{job['id']}")
        page = b.page
        await page.wait_for_selector('[data-testid="job-view"]:not([hidden])')
        assert await page.inner_text('[data-testid="job-view-id"]') == job["id"]
        assert await page.is_hidden("#workflow-view")
        await page.wait_for_selector('[data-testid="job-view"] [data-testid="status-badge"]')
        badge = page.locator('[data-testid="job-view"] .badge')
        assert await badge.get_attribute("data-status") == "completed"
        # six chunks: one polyline per chart, the ETA chart with the real remaining time too
        # attached, not "visible": chunks that all took the same time draw a flat line,
        # whose bounding box has no height (Playwright calls it hidden; it is drawn)
        await page.wait_for_selector('[data-testid="chart-duration"] polyline', state="attached")
        assert await page.locator('[data-testid="chart-eta"] polyline').count() == 2
        assert "6 chunks done" in await page.inner_text('[data-testid="chunk-summary"]')
        stage = await page.inner_text('[data-testid="timeline-stage"]')
        assert "enhanced" in stage and "done" in stage
        assert "chunkSize" in await page.inner_text('[data-testid="job-config"]')
        await page.wait_for_selector('[data-testid="job-match-row"]')
        assert await page.locator('[data-testid="job-match-row"]').count() == 50
        assert await page.locator('[data-testid="job-controls"] button').count() == 0
        # nothing was withdrawn: no such figure
        assert await page.locator('[data-testid="job-view-withdrawn"]').count() == 0
        # an unknown job says so
        await b.open("#/jobs/00000000-0000-4000-8000-000000000000")
        await page.wait_for_selector('[data-testid="job-view-missing"]')
    assert not b.problems, b.problems


async def test_the_job_view_counts_its_withdrawn_matches(live_server, client) -> None:
    from tests.e2e.test_withdrawn_matches import contested_set, run_job

    _, job_id, matches = await run_job(
        client, "withdrawn view", contested_set()[1], {"chunkSize": 5}
    )
    assert "weak" not in matches  # withdrawn at the job's end: its record has a sure match
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        await b.open(f"#/jobs/{job_id}")
        stat = b.page.locator('[data-testid="job-view-withdrawn"]')
        await stat.wait_for()
        assert await stat.inner_text() == "1"
        label = stat.locator("xpath=../dt")
        assert await label.text_content() == "Withdrawn matches"
    assert not b.problems, b.problems


async def test_controls_pause_resume_and_cancel_a_job(live_server, client) -> None:
    project_id = await _project(client, 300, "controls")
    job = await create_job(client, project_id, {"chunkSize": 1})
    r = await client.post(f"/api/jobs/{job['id']}/pause")
    assert r.json()["job"]["status"] == "paused"
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        page = b.page
        await b.open(f"#/jobs/{job['id']}")
        badge = '[data-testid="job-view"] .badge'
        await page.wait_for_selector(f'{badge}[data-status="paused"]')
        assert await page.locator('[data-action="pause"]').count() == 0
        await page.click('[data-action="resume"]')
        await page.wait_for_selector('[data-action="pause"]')
        assert (await client.get(f"/api/jobs/{job['id']}")).json()["job"]["status"] in (
            "pending",
            "processing",
        )
        await page.click('[data-action="pause"]')
        await page.wait_for_selector(f'{badge}[data-status="paused"]')
        assert (await client.get(f"/api/jobs/{job['id']}")).json()["job"]["status"] == "paused"

        # cancel asks first: dismissed, nothing happens; accepted, the job is cancelled
        page.once("dialog", lambda dialog: dialog.dismiss())
        await page.click('[data-action="cancel"]')
        await page.wait_for_selector('[data-action="resume"]')
        assert (await client.get(f"/api/jobs/{job['id']}")).json()["job"]["status"] == "paused"
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click('[data-action="cancel"]')
        await page.wait_for_selector(f'{badge}[data-status="cancelled"]')
        assert (await client.get(f"/api/jobs/{job['id']}")).json()["job"]["status"] == "cancelled"
        assert await page.locator('[data-testid="job-controls"] button').count() == 0
        assert await page.is_hidden('[data-testid="error-banner"]')  # a cancel is no error
    assert not b.problems, b.problems


async def test_the_dashboard_filters_counts_and_searches(live_server, client) -> None:
    first = await _project(client, 20, "alpha")
    second = await _project(client, 20, "beta")
    done = await create_job(client, first, {"chunkSize": 10})
    await drive(client, done["id"])
    stopped = await create_job(client, second, {"chunkSize": 10})
    await client.post(f"/api/jobs/{stopped['id']}/cancel")
    counts = (await client.get("/api/jobs/status")).json()["counts"]
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        page = b.page
        await b.open("#/jobs")
        rows = '[data-testid="dashboard-row"]'
        await page.wait_for_selector(f'{rows}[data-job-id="{stopped["id"]}"]')
        for status in ("completed", "cancelled"):
            chip = await page.inner_text(f'[data-testid="count-{status}"]')
            assert chip.split()[0] == str(counts[status])

        await page.select_option('[data-testid="filter-status"]', "cancelled")
        statuses = await page.locator(rows).evaluate_all("rs => rs.map(r => r.dataset.status)")
        assert statuses and set(statuses) == {"cancelled"}

        await page.select_option('[data-testid="filter-status"]', "")
        await page.select_option('[data-testid="filter-project"]', first)
        ids = await page.locator(rows).evaluate_all("rs => rs.map(r => r.dataset.jobId)")
        assert done["id"] in ids and stopped["id"] not in ids

        await page.select_option('[data-testid="filter-project"]', "")
        await page.fill('[data-testid="filter-search"]', stopped["id"][:13])
        ids = await page.locator(rows).evaluate_all("rs => rs.map(r => r.dataset.jobId)")
        assert ids == [stopped["id"]]

        await page.click(f'{rows}[data-job-id="{stopped["id"]}"] [data-testid="open-job"]')
        await page.wait_for_selector('[data-testid="job-view"]:not([hidden])')
        assert await page.inner_text('[data-testid="job-view-id"]') == stopped["id"]
    assert not b.problems, b.problems


async def test_a_job_driven_over_the_api_shows_a_live_bar(live_server, client) -> None:
    project_id = await _project(client, 40, "live")
    job = await create_job(client, project_id, {"chunkSize": 10})
    async with Browser(live_server, viewport={"width": 390, "height": 844}) as b:
        page = b.page
        await b.open("#/jobs")
        bar = f'[data-job-id="{job["id"]}"] [data-testid="row-bar"]'
        await page.wait_for_selector(bar)
        # a phone's width: nothing wider than the screen
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await process_chunk(client, job["id"])
        await page.wait_for_selector(f'{bar}[aria-valuenow="25"]')
        await process_chunk(client, job["id"])
        await page.wait_for_selector(f'{bar}[aria-valuenow="50"]')
        await drive(client, job["id"])
        await page.wait_for_selector(f'{bar}[data-status="completed"]')
    assert not b.problems, b.problems


async def test_the_page_remembers_columns_links_a_409_and_shows_the_progress(
    live_server, client
) -> None:
    project_id = await create_project(client, "ux")
    catalog = [{**r, "brand": r["name"].split()[0]} for r in products(30, "c")]
    await upload(client, project_id, "catalog", catalog)
    await upload(client, project_id, "items", [{**r, "id": f"i{r['id']}"} for r in catalog])
    async with Browser(live_server, viewport={"width": 1280, "height": 900}) as b:
        page = b.page
        await b.open(f"#project={project_id}")
        brand = 'input[name="catalog-field"][value="brand"]'
        name = 'input[name="catalog-field"][value="name"]'
        await page.wait_for_selector(brand)
        assert await page.is_checked(name) and not await page.is_checked(brand)
        await page.check(brand)
        await page.uncheck(name)
        await page.reload()
        await page.wait_for_selector(brand)
        assert await page.is_checked(brand) and not await page.is_checked(name)
        await page.check(name)

        # start: the progress panel comes into view while the first chunk is held
        release = asyncio.Event()

        async def hold(route) -> None:
            await asyncio.wait_for(release.wait(), TIMEOUT_MS / 1000)
            await route.continue_()

        await page.route("**/api/jobs/*/process", hold)
        await page.fill("#chunk-size", "10")
        await page.click("#start-job")
        panel = page.locator("#job-panel")
        await panel.wait_for(state="visible")
        await page.wait_for_function(
            "() => { const r = document.getElementById('job-panel').getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= innerHeight; }"
        )
        running = (await client.get("/api/jobs", params={"projectId": project_id})).json()
        job_id = running["jobs"][0]["id"]
        # a second start is a 409 that links to the job already running
        page.once("dialog", lambda dialog: dialog.accept())  # the cancel asks first
        await page.click("#cancel-job")  # the page's own cancel: a neutral state
        release.set()
        await page.wait_for_selector('#job-status[data-status="cancelled"]')
        assert await page.is_hidden('[data-testid="error-banner"]')
        await page.unroute("**/api/jobs/*/process")
        live = await create_job(client, project_id, {"chunkSize": 10})
        await page.click("#start-job")
        link = page.locator('[data-testid="existing-job-link"]')
        await link.wait_for()
        assert await link.get_attribute("href") == f"#/jobs/{live['id']}"
        await link.click()
        await page.wait_for_selector('[data-testid="job-view"]:not([hidden])')
        assert await page.inner_text('[data-testid="job-view-id"]') == live["id"]
        assert job_id != live["id"]
    assert not b.problems, b.problems

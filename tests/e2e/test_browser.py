"""The page, driven in headless Chromium: project → uploads → job with progress → matches.

Run on their own (``pytest -m browser``): Playwright must not share a pytest session
with other event-loop users (see shared/PITFALLS.md). Uses Debian's /usr/bin/chromium;
``playwright install`` cannot download browsers here.
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from tests.e2e.helpers import process_chunk

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "benchmarks" / "out"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROWS = 300
CHUNK_SIZE = 50
# The job's third chunk is held until the mid-job screenshot is taken.
HELD_CHUNK = 3
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing: `apt-get install -y chromium` to run browser tests",
    ),
]

BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay"]
PRODUCTS = [
    "Cordless Drill",
    "Claw Hammer",
    "Screwdriver Set",
    "Adjustable Wrench",
    "Tape Measure",
    "Spirit Level",
    "Circular Saw",
    "Needle Nose Pliers",
    "Angle Grinder",
    "Crème Polish",
]
COLOURS = ["Red", "Blue", "Black", "Yellow", "Green"]


def write_csvs(folder: Path) -> tuple[Path, Path]:
    """A UTF-8 catalog keyed by ``sku`` and a Windows-1252 item file keyed by ``code``."""
    catalog = folder / "catalog.csv"
    items = folder / "items.csv"
    with (
        catalog.open("w", newline="", encoding="utf-8") as c_file,
        items.open("w", newline="", encoding="cp1252") as i_file,
    ):
        c_writer = csv.writer(c_file)
        i_writer = csv.writer(i_file)
        c_writer.writerow(["sku", "name", "brand", "price"])
        i_writer.writerow(["code", "description", "title", "qty"])
        for i in range(ROWS):
            brand = BRANDS[i % len(BRANDS)]
            product = PRODUCTS[(i // len(BRANDS)) % len(PRODUCTS)]
            colour = COLOURS[i % len(COLOURS)]
            size = 10 + (i % 17) * 5
            c_writer.writerow(
                [
                    f"SKU-{i:04d}",
                    f"{brand} {product} {size}mm {colour} Model {i}",
                    brand,
                    f"{9 + i % 40}.99",
                ]
            )
            # Every seventh item has no counterpart in the catalog.
            title = (
                f"Garden hose reel {i} metres, {colour.lower()} spiral"
                if i % 7 == 0
                else f"{brand.upper()} {product.lower()} {colour} {size} mm model {i}"
            )
            i_writer.writerow([f"IT{i:04d}", f"line {i}", title, str(1 + i % 5)])
    return catalog, items


async def upload(
    page, kind: str, path: Path, *, id_field: str, encoding: str, match_column: str
) -> str:
    await page.set_input_files(f"#{kind}-file", str(path))
    await page.select_option(f"#{kind}-encoding", encoding)
    # The id column list is filled from the file's header, read in the browser.
    await page.wait_for_selector(f'#{kind}-id-field option[value="{id_field}"]', state="attached")
    await page.select_option(f"#{kind}-id-field", id_field)
    for box in await page.query_selector_all(f'input[name="{kind}-field"]:checked'):
        await box.uncheck()
    await page.check(f'input[name="{kind}-field"][value="{match_column}"]')
    await page.click(f"#{kind}-upload")
    await page.wait_for_selector(f'#{kind}-result[data-state="done"]', timeout=TIMEOUT_MS)
    return await page.inner_text(f"#{kind}-result")


async def open_project_page(browser, live_server, project: str, **page_options):
    """A signed-in page with a new project chosen."""
    page = await browser.new_page(**page_options)
    await page.add_init_script(f"localStorage.setItem('chunkmatch.token', {live_server.token!r})")
    await page.goto(f"{live_server.url}/")
    await page.wait_for_selector('body[data-ready="true"]')
    await page.fill("#project-name", project)
    await page.click("#create-project")
    await page.wait_for_selector("#project-info:not([hidden])")
    return page


async def test_page_runs_a_job_to_completion(live_server, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    catalog_csv, items_csv = write_csvs(tmp_path)
    problems: list[str] = []
    chunk_calls = 0
    screenshot_taken = asyncio.Event()

    async def hold_one_chunk(route) -> None:
        nonlocal chunk_calls
        chunk_calls += 1
        if chunk_calls == HELD_CHUNK:
            await asyncio.wait_for(screenshot_taken.wait(), TIMEOUT_MS / 1000)
        await route.continue_()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error"
                    else None
                ),
            )
            await page.route("**/api/jobs/*/process", hold_one_chunk)

            await page.goto(f"{live_server.url}/")
            await page.wait_for_selector('body[data-ready="true"]')
            await page.wait_for_selector('#health[data-state="ok"]')
            # the page asks for the API token once and keeps it in local storage
            await page.wait_for_selector("#token-section:not([hidden])")
            await page.fill("#token-input", live_server.token)
            await page.click('[data-testid="token-save"]')
            await page.wait_for_selector("#token-section", state="hidden")
            stored = await page.evaluate("localStorage.getItem('chunkmatch.token')")
            assert stored == live_server.token

            await page.fill("#project-name", "Browser test hardware")
            await page.click("#create-project")
            await page.wait_for_selector("#project-info:not([hidden])")
            selected = await page.eval_on_selector(
                "#project-select", "s => s.selectedOptions[0].text"
            )
            assert "Browser test hardware" in selected

            catalog_result = await upload(
                page, "catalog", catalog_csv, id_field="sku", encoding="utf-8", match_column="name"
            )
            assert f"Inserted {ROWS}" in catalog_result
            assert f"{ROWS} in total" in catalog_result
            items_result = await upload(
                page, "items", items_csv, id_field="code", encoding="cp1252", match_column="title"
            )
            assert f"Inserted {ROWS}" in items_result
            assert await page.inner_text("#project-item-count") == str(ROWS)

            await page.fill("#chunk-size", str(CHUNK_SIZE))
            await page.fill("#threshold", "0.5")
            await page.click("#start-job")

            # Mid-job: two chunks done, the third held by the route above.
            await page.wait_for_function(
                "() => Number(document.querySelector('#progress-bar')"
                ".getAttribute('aria-valuenow')) > 0",
                timeout=TIMEOUT_MS,
            )
            mid_value = float(await page.get_attribute("#progress-bar", "aria-valuenow"))
            assert 0 < mid_value < 100
            assert await page.is_visible("#cancel-job")
            await page.screenshot(path=str(SCREENSHOTS / "browser-mid-job.png"), full_page=True)
            screenshot_taken.set()

            await page.wait_for_selector('#job-status[data-status="completed"]', timeout=TIMEOUT_MS)
            assert await page.get_attribute("#progress-bar", "aria-valuenow") == "100"
            progress_text = await page.inner_text("#progress-text")
            assert f"{ROWS} / {ROWS}" in progress_text and "100%" in progress_text
            assert chunk_calls >= ROWS // CHUNK_SIZE
            matches_found = int((await page.inner_text("#stat-matches")).replace(",", ""))
            assert matches_found > 0

            await page.wait_for_selector("#matches-section:not([hidden]) [data-testid=match-row]")
            rows = await page.query_selector_all("[data-testid=match-row]")
            assert 0 < len(rows) <= 100
            if await page.is_visible("#load-more"):
                await page.click("#load-more")
                await page.wait_for_function(
                    f"() => document.querySelectorAll('[data-testid=match-row]').length > {len(rows)}"
                )
            shown = len(await page.query_selector_all("[data-testid=match-row]"))
            assert shown == min(matches_found, 200)

            href = await page.get_attribute("#download-csv", "href")
            assert href and "format=csv" in href
            # the link needs the token, which the page adds: download as a user would
            async with page.expect_download() as info:
                await page.click("#download-csv")
            download = await info.value
            text = Path(await download.path()).read_text(encoding="utf-8")
            records = list(csv.reader(io.StringIO(text)))
            assert len(records) == matches_found + 1  # header + one row per match

            await page.wait_for_selector("[data-testid=job-row]")
            job_rows = await page.query_selector_all("[data-testid=job-row]")
            assert len(job_rows) == 1
            status = await job_rows[0].query_selector(".badge")
            assert await status.get_attribute("data-status") == "completed"

            await page.evaluate("window.scrollTo(0, 0)")
            await page.screenshot(path=str(SCREENSHOTS / "browser-completed.png"), full_page=True)
            assert await page.is_hidden("#error-banner"), await page.inner_text("#error-text")
        finally:
            await browser.close()

    assert not problems, "\n".join(problems)


async def test_page_shows_server_errors(live_server) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await open_project_page(browser, live_server, "Errors shown")
            # No items uploaded yet: the server refuses the job and the page says why.
            await page.click("#start-job")
            await page.wait_for_selector("#error-banner:not([hidden])")
            assert "no items" in await page.inner_text("#error-text")
            await page.click("#error-dismiss")
            assert await page.is_hidden("#error-banner")
            # An upload with an id column the server does not find: the server's message shows.
            await page.set_input_files(
                "#catalog-file",
                files=[
                    {"name": "c.csv", "mimeType": "text/csv", "buffer": b"sku,name\n1,Hammer\n"}
                ],
            )
            await page.wait_for_selector('#catalog-id-field option[value="sku"]', state="attached")
            await page.evaluate(
                "() => { const s = document.querySelector('#catalog-id-field');"
                " s.add(new Option('missing', 'missing')); s.value = 'missing'; }"
            )
            await page.click("#catalog-upload")
            await page.wait_for_selector("#error-banner:not([hidden])")
            message = await page.inner_text("#error-text")
            assert "missing" in message, message
            assert await page.get_attribute("#catalog-result", "data-state") == "error"
        finally:
            await browser.close()


def _workbook(rows: list[list]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_page_detects_encodings_reads_xlsx_and_keeps_long_errors_in_bounds(
    live_server,
) -> None:
    from playwright.async_api import async_playwright

    items = "id,name\n1,Caf\u00e9 Cr\u00e8me\u00ae 40\u20ac\n2,M\u00fcller \u201cdeluxe\u201d\n"
    catalog = _workbook([["sku", "name"], ["c1", "Café Crème® 40€"], ["c2", "Müller deluxe"]])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await open_project_page(
                browser, live_server, "Detected", viewport={"width": 420, "height": 900}
            )
            # a Windows-1252 CSV and an .xlsx, with the Encoding menu left as it is
            await page.set_input_files(
                "#items-file",
                files=[{"name": "i.csv", "mimeType": "text/csv", "buffer": items.encode("cp1252")}],
            )
            await page.wait_for_selector('#items-id-field option[value="id"]', state="attached")
            await page.click("#items-upload")
            await page.wait_for_selector('#items-result[data-state="done"]', timeout=TIMEOUT_MS)
            assert "read as cp1252" in await page.inner_text("#items-result")
            await page.set_input_files(
                "#catalog-file",
                files=[{"name": "c.xlsx", "mimeType": "", "buffer": catalog}],
            )
            # its id column is not "id": the server names its columns, the page offers them
            await page.click("#catalog-upload")
            await page.wait_for_selector('#catalog-id-field option[value="sku"]', state="attached")
            assert "choose the ID column" in await page.inner_text("#catalog-result")
            await page.select_option("#catalog-id-field", "sku")
            await page.click("#catalog-upload")
            await page.wait_for_selector('#catalog-result[data-state="done"]', timeout=TIMEOUT_MS)
            assert "2 in total" in await page.inner_text("#catalog-result")
            await page.wait_for_selector('input[name="catalog-field"][value="name"]:checked')
            assert await page.inner_text("#project-catalog-count") == "2"
            # a picture is named for what it is, not read as columns
            png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
            await page.set_input_files(
                "#items-file", files=[{"name": "p.png", "mimeType": "image/png", "buffer": png}]
            )
            await page.wait_for_selector("#error-banner:not([hidden])")
            assert "not a CSV or Excel file" in await page.inner_text("#error-text")
            # a message quoting a long unbroken value wraps inside the page
            name = "x" * 3000
            await page.set_input_files(
                "#catalog-file",
                files=[
                    {
                        "name": "long.csv",
                        "mimeType": "text/csv",
                        "buffer": f"id,{name},{name}\n1,a,b\n".encode(),
                    }
                ],
            )
            await page.wait_for_selector('#catalog-id-field option[value="id"]', state="attached")
            await page.click("#catalog-upload")
            await page.wait_for_selector("#error-banner:not([hidden])")
            assert "duplicate column" in await page.inner_text("#error-text")
            wide = await page.evaluate(
                "() => [...document.querySelectorAll('body *')]"
                ".filter((e) => e.getBoundingClientRect().right > 421)"
                ".map((e) => `${e.tagName}#${e.id}.${e.className}`).slice(0, 8)"
            )
            width = await page.evaluate("document.documentElement.scrollWidth")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOTS / "page-long-error.png"), full_page=True)
            assert width <= 420, (width, wide)
        finally:
            await browser.close()


async def test_page_shows_progress_the_server_pushes(live_server, tmp_path: Path) -> None:
    """The page's own chunk calls are held: the bar can only move by the job's events
    (EventSource, opened with a ticket) while another client drives the job."""
    import httpx
    from playwright.async_api import async_playwright

    catalog_csv, items_csv = write_csvs(tmp_path)
    requests: list[str] = []
    held = []

    async def hold(route) -> None:
        held.append(route)  # never let through: the page advances nothing

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await open_project_page(browser, live_server, "Pushed progress")
            page.on("request", lambda r: requests.append(r.url))
            await page.route("**/api/jobs/*/process", hold)
            await upload(
                page, "catalog", catalog_csv, id_field="sku", encoding="utf-8", match_column="name"
            )
            await upload(
                page, "items", items_csv, id_field="code", encoding="cp1252", match_column="title"
            )
            await page.fill("#chunk-size", str(CHUNK_SIZE))
            async with page.expect_request("**/events-ticket") as ticket_request:
                await page.click("#start-job")
            job_id = (await ticket_request.value).url.split("/")[-2]
            async with asyncio.timeout(TIMEOUT_MS / 1000):  # the page opens its stream
                while not any("/events?ticket=" in u for u in requests):
                    await asyncio.sleep(0.05)
            # the Match view's Cancel asks first, as the job view's does: dismissed, the
            # job goes on
            asked: list[str] = []

            async def dismiss(dialog) -> None:
                asked.append(dialog.message)
                await dialog.dismiss()

            page.once("dialog", dismiss)
            await page.click("#cancel-job")
            async with asyncio.timeout(TIMEOUT_MS / 1000):
                while not asked:
                    await asyncio.sleep(0.05)
            assert "cannot be resumed" in asked[0]
            seen: list[float] = []
            async with httpx.AsyncClient(
                base_url=live_server.url, headers=live_server.headers(), timeout=60
            ) as client:
                while True:
                    job = (await process_chunk(client, job_id))["job"]
                    if job["status"] == "completed":
                        break
                    await page.wait_for_function(
                        "(n) => Number(document.querySelector('#progress-bar')"
                        ".getAttribute('aria-valuenow')) >= n - 0.05",  # shown to 0.1 %
                        arg=job["progressPercentage"],
                        timeout=TIMEOUT_MS,
                    )
                    seen.append(float(await page.get_attribute("#progress-bar", "aria-valuenow")))
            await page.wait_for_selector('#job-status[data-status="completed"]', timeout=TIMEOUT_MS)
            assert await page.get_attribute("#progress-bar", "aria-valuenow") == "100"
            assert len(seen) >= ROWS // CHUNK_SIZE - 1 and 0 < seen[0] < 100
            assert held, "the page did try to drive the job itself"
            assert not any(u.endswith(f"/api/jobs/{job_id}/cancel") for u in requests)
            ticketed = [u for u in requests if "/events?ticket=" in u]
            assert ticketed and all(f"/api/jobs/{job_id}/events" in u for u in ticketed)
        finally:
            await browser.close()

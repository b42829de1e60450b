"""Hostile input gets a 4xx with the usual error shape, never a 500, and writes nothing
(issue 14, item 9)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.helpers import create_project, upload_csv

HUGE = "k" * 10_000_000
NOT_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 5000]
NOT_FILE_ENCODINGS = [
    "rot13",
    "base64",
    "hex",
    "zlib",
    "bz2",
    "uu",
    "quopri",
    "punycode",
    "undefined",
    "utf-8\x00",
    "idna",
]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _is_error(r: httpx.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    body = r.json()
    assert body["success"] is False and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


async def _count(client: httpx.AsyncClient, pid: str) -> tuple[int, int]:
    project = (await client.get(f"/api/projects/{pid}")).json()["project"]
    return project["catalogCount"], project["itemCount"]


async def _project_names(client: httpx.AsyncClient) -> list[str]:
    r = await client.get("/api/projects", params={"limit": 1000})
    return [p["name"] for p in r.json()["projects"]]


@pytest.mark.parametrize("value", NOT_NUMBERS + [_deep(990), _deep(100_000)])
async def test_json_values_python_cannot_use_are_a_400(
    client: httpx.AsyncClient, value: str
) -> None:
    pid = await create_project(client, "hostile json")
    json_headers = {"Content-Type": "application/json"}
    r = await client.post(
        "/api/projects", content=f'{{"name": {value}}}'.encode(), headers=json_headers
    )
    _is_error(r, 400)
    records = f'{{"records": [{{"id": "1", "name": "x", "v": {value}}}]}}'.encode()
    for kind in ("catalog", "items"):
        r = await client.post(f"/api/projects/{pid}/{kind}", content=records, headers=json_headers)
        _is_error(r, 400)
    r = await client.post(
        "/api/jobs/create",
        content=f'{{"projectId": "{pid}", "jobType": "enhanced", "priority": {value}}}'.encode(),
        headers=json_headers,
    )
    _is_error(r, 400)
    assert await _count(client, pid) == (0, 0)


@pytest.mark.parametrize("encoding", NOT_FILE_ENCODINGS)
async def test_an_encoding_that_is_no_text_encoding_is_a_422(
    client: httpx.AsyncClient, encoding: str
) -> None:
    pid = await create_project(client, "hostile encoding")
    r = await upload_csv(client, pid, "items", b"id,name\n1,abc\n", encoding=encoding)
    error = _is_error(r, 422)
    assert "encoding" in error["message"]
    assert await _count(client, pid) == (0, 0)


async def test_a_json_route_refuses_a_body_of_another_type(client: httpx.AsyncClient) -> None:
    name = "sent as text/plain"
    r = await client.post(
        "/api/projects",
        content=f'{{"name": "{name}"}}'.encode(),
        headers={"Content-Type": "text/plain"},
    )
    _is_error(r, 415)
    assert name not in await _project_names(client)
    pid = await create_project(client, "plain job")
    r = await client.post(
        "/api/jobs/create",
        content=f'{{"projectId": "{pid}", "jobType": "enhanced"}}'.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _is_error(r, 415)
    # a body-less control call with any content type is still fine
    r = await client.post("/api/jobs/status")
    assert r.status_code == 405


async def test_errors_do_not_echo_huge_inputs(client: httpx.AsyncClient) -> None:
    pid = await create_project(client, "huge echo")
    attempts = [
        ("/api/projects", {"name": "x", HUGE: 1}),
        ("/api/jobs/create", {"projectId": pid, "jobType": HUGE}),
        ("/api/jobs/create", {"projectId": HUGE, "jobType": "enhanced"}),
        (f"/api/projects/{pid}/items", {"records": [{"id": "1"}], "idField": HUGE}),
        (f"/api/projects/{pid}/items", {"records": [{"id": "1", HUGE: "\x00"}]}),
        (f"/api/projects/{pid}/items", {"records": [{"id": "1"}], HUGE: 1}),
    ]
    for path, body in attempts:
        r = await client.post(path, json=body)
        error = _is_error(r, 400, 422)
        assert len(r.content) < 2000, (path, error["message"][:300])
    r = await client.get("/api/" + "p" * 10_000)
    _is_error(r, 404)
    assert len(r.content) < 2000
    header = ",".join(f"column{n}" for n in range(5000)).encode()
    r = await upload_csv(client, pid, "items", header + b"\n" + b"1," * 4999 + b"1\n")
    _is_error(r, 422)
    assert len(r.content) < 4000
    assert await _count(client, pid) == (0, 0)

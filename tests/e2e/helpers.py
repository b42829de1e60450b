"""Small helpers for tests that talk to a live server over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def create_project(client: httpx.AsyncClient, name: str = "test project") -> str:
    r = await client.post("/api/projects", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["project"]["id"]


async def upload(
    client: httpx.AsyncClient,
    project_id: str,
    kind: str,
    records: list[dict[str, Any]],
    id_field: str = "id",
) -> dict[str, Any]:
    r = await client.post(
        f"/api/projects/{project_id}/{kind}", json={"records": records, "idField": id_field}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def upload_csv(
    client: httpx.AsyncClient, project_id: str, kind: str, data: bytes, **params: str
) -> httpx.Response:
    return await client.post(
        f"/api/projects/{project_id}/{kind}",
        content=data,
        headers={"Content-Type": "text/csv"},
        params=params,
    )


async def create_job(
    client: httpx.AsyncClient,
    project_id: str,
    config: dict[str, Any] | None = None,
    job_type: str = "enhanced",
) -> dict[str, Any]:
    body: dict[str, Any] = {"projectId": project_id, "jobType": job_type}
    if config is not None:
        body["config"] = config
    r = await client.post("/api/jobs/create", json=body)
    assert r.status_code == 201, r.text
    return r.json()["job"]


PREPARATION_CALLS = 50
"""How many /process answers a test lets stop at a job's preparation (each waits up to
PREPARATION_WAIT_SECONDS for it) before it calls the job stuck."""


async def process_chunk(
    client: httpx.AsyncClient,
    job_id: str,
    *,
    url: str = "",
    answers: list[dict] | None = None,
    **request: Any,
) -> dict:
    """The body of the first /process answer on ``job_id`` past the job's preparation: one
    that ran a chunk (or said why none was due: paused, waiting, completed, ...).

    A job builds its catalog index and peers before its first chunk, and /process waits for
    that only briefly inline (service/engine.py), so under load the first calls of a test
    may answer "Preparing ..." / "Prepared ..." and run no chunk. ``url`` is the server's
    when ``client`` has no base URL, ``request`` goes to each POST (headers), and every
    answer, the preparing ones too, is appended to ``answers`` when given."""
    for _ in range(PREPARATION_CALLS):
        r = await client.post(f"{url}/api/jobs/{job_id}/process", **request)
        assert r.status_code == 200, r.text
        body = r.json()
        if answers is not None:
            answers.append(body)
        if not body["message"].startswith("Prepar"):
            return body
    raise AssertionError(
        f"no /process answer got past the preparation in {PREPARATION_CALLS} calls; "
        f"the last: {body['message']!r}"
    )


async def drive(client: httpx.AsyncClient, job_id: str, max_calls: int = 10_000) -> list[dict]:
    """Call process until the job finishes; return the job snapshot of every answer past
    the job's preparation (see :func:`process_chunk`)."""
    seen = []
    for _ in range(max_calls):
        job = (await process_chunk(client, job_id))["job"]
        seen.append(job)
        if job["status"] not in ("pending", "processing"):
            return seen
    raise AssertionError("job did not finish")


def products(n: int, prefix: str = "") -> list[dict[str, Any]]:
    """n distinct product-like records."""
    brands = ["Sony", "Samsung", "Canon", "Nikon", "Panasonic", "Philips", "Bose", "Apple"]
    kinds = ["Camera", "Television", "Headphones", "Speaker", "Blender", "Monitor", "Router"]
    return [
        {
            "id": f"{prefix}{i}",
            "name": f"{brands[i % len(brands)]} {kinds[(i // 8) % len(kinds)]} "
            f"X{i:05d}{chr(65 + i % 26)} series {i % 13}",
        }
        for i in range(n)
    ]


async def sse_frames(response: httpx.Response):
    """The frames of an event stream as they arrive: dicts with ``id``, ``event`` and
    ``data`` (the JSON decoded), or ``{"comment": text}`` for a comment line."""
    import json

    frame: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if frame:
                if "data" in frame:
                    frame["data"] = json.loads(frame["data"])
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            frame[name] = value[1:] if value.startswith(" ") else value


# a /metrics scrape, sample by sample
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))

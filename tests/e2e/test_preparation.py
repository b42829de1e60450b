"""A job's preparation over real HTTP: the catalog index and peers a job needs are built
before its chunks, in every service process that drives it, and the job JSON says so."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx

from tests.conftest import free_port, run_server_in_thread
from tests.e2e.helpers import create_job, create_project, products, upload

STEPS = ("catalog_index", "peers")


def _valid_preparation(value: object) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, dict)
        and set(value) == {"step", "progress"}
        and value["step"] in STEPS
        and 0.0 <= value["progress"] <= 1.0
    )


async def _project(client: httpx.AsyncClient, n: int = 90) -> str:
    project_id = await create_project(client, "preparation")
    catalog = products(n, "c")
    await upload(client, project_id, "catalog", catalog)
    items = [{"id": f"i{k}", "name": r["name"].lower()} for k, r in enumerate(catalog)]
    await upload(client, project_id, "items", items)
    return project_id


async def _drive(client: httpx.AsyncClient, job: dict) -> list[dict]:
    """Every /process answer until the job finishes (bounded)."""
    answers = []
    for _ in range(200):
        r = await client.post(f"/api/jobs/{job['id']}/process")
        assert r.status_code == 200, r.text
        answers.append(r.json())
        if r.json()["job"]["status"] not in ("pending", "processing"):
            return answers
    raise AssertionError("the job did not finish")


def _check_answers(answers: list[dict], chunk_size: int) -> None:
    """Each answer processed exactly one chunk, or none while the job was being prepared."""
    before = 0
    for body in answers:
        job = body["job"]
        assert _valid_preparation(job["preparation"])
        done = job["processedItems"] - before
        if body["message"].startswith("Prepar"):
            assert done == 0  # a preparing answer claims no chunk
        else:
            assert 0 < done <= chunk_size and job["preparation"] is None
        before = job["processedItems"]


async def test_a_job_shows_its_preparation_and_every_chunk_follows_it(
    client: httpx.AsyncClient,
) -> None:
    project_id = await _project(client)
    job = await create_job(client, project_id, {"chunkSize": 30})
    assert "preparation" in job and _valid_preparation(job["preparation"])
    answers = await _drive(client, job)
    _check_answers(answers, 30)
    final = answers[-1]["job"]
    assert final["status"] == "completed" and final["processedItems"] == 90
    shown = (await client.get(f"/api/jobs/{job['id']}")).json()["job"]
    assert shown["preparation"] is None


async def test_another_service_process_prepares_the_job_for_itself(
    client: httpx.AsyncClient, live_server
) -> None:
    """A second process (a worker, another replica) on the same database has not built the
    job's index: it prepares before it runs the job's chunks there, and nothing is lost."""
    project_id = await _project(client, 60)
    job = await create_job(client, project_id, {"chunkSize": 20})
    first = (await client.post(f"/api/jobs/{job['id']}/process")).json()
    port = free_port()
    other, thread = await asyncio.to_thread(
        run_server_in_thread, replace(live_server.settings), port
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=live_server.headers(), timeout=60
        ) as elsewhere:
            answers = await _drive(elsewhere, {"id": job["id"]})
    finally:
        other.should_exit = True
        await asyncio.to_thread(thread.join, 30)
    assert first["job"]["processedItems"] in (0, 20)
    _check_answers([first, *answers], 20)
    final = answers[-1]["job"]
    assert final["status"] == "completed" and final["processedItems"] == 60
    assert final["preparation"] is None

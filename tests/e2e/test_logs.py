"""The log of a real `chunkmatch serve`: with ``CHUNKMATCH_LOG_FORMAT=json`` every line is one
JSON object, a chunk's line carries its job, stage, chunk and duration, the access log its
route template, status and duration; in either format no token, ticket or secret appears,
not even one sent in a query string."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.e2e.helpers import process_chunk, sse_frames
from tests.e2e.processes import ServiceProcess, auth, create_token, seed_project

METRICS_TOKEN = "metrics-secret-0123456789abcdef0123456789"


async def _exercise(db_dsn: str, log_format: str) -> tuple[str, str, list[str], int]:
    """Run three chunks of a job on a server logging in ``log_format`` at INFO, sending
    secrets every way a client might; the job's id, the log, the secrets that must not be in
    it, and how many /process calls it took."""
    token = await asyncio.to_thread(create_token, db_dsn)
    env = {
        "CHUNKMATCH_LOG_LEVEL": "INFO",
        "CHUNKMATCH_LOG_FORMAT": log_format,
        "CHUNKMATCH_METRICS_TOKEN": METRICS_TOKEN,
    }
    server = ServiceProcess(db_dsn, env)
    await asyncio.to_thread(server.start)
    answers: list[dict] = []
    try:
        _, job_id = await asyncio.to_thread(seed_project, server.url, token, 30, 20, chunk_size=10)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            for _ in range(3):  # (and the calls that only saw the job's preparation)
                await process_chunk(c, job_id, answers=answers, headers=auth(token))
            ticket = (
                await c.post(f"/api/jobs/{job_id}/events-ticket", headers=auth(token))
            ).json()["ticket"]
            async with c.stream("GET", f"/api/jobs/{job_id}/events?ticket={ticket}") as s:
                assert s.status_code == 200
                await anext(sse_frames(s))
            # a token in the query string (refused: tokens go in the header) and others
            r = await c.get(f"/api/jobs/{job_id}?token={token}&limit=5")
            assert r.status_code == 401
            await c.get(f"/metrics?access_token={METRICS_TOKEN}", headers=auth(METRICS_TOKEN))
            await c.get(f"/no/such/page?api_key={token}&secret={METRICS_TOKEN}")
    finally:
        server.stop()
    log = server.log_path.read_text()
    return job_id, log, [token, token[3:20], ticket, ticket[3:20], METRICS_TOKEN], len(answers)


async def test_json_lines_with_the_fields_of_chunks_and_requests(db_dsn) -> None:
    job_id, log, secrets, calls = await _exercise(db_dsn, "json")
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    chunks = [ln for ln in lines if ln["logger"] == "chunkmatch.engine" and "chunk" in ln]
    assert [c["chunk"] for c in chunks] == [1, 2, 3]
    for c in chunks:
        assert c["job_id"] == job_id and c["stage"] == "enhanced"
        assert isinstance(c["duration_ms"], float) and c["duration_ms"] > 0
        assert c["items"] == 10 and c["level"] == "INFO"
    access = [ln for ln in lines if ln["logger"] == "chunkmatch.access"]
    process = [a for a in access if a["route"] == "/api/jobs/{job_id}/process"]
    assert len(process) == calls  # one line per /process call
    assert all(a["status"] == 200 and a["method"] == "POST" for a in process)
    assert all(
        a["duration_ms"] >= 0 and a["path"] == f"/api/jobs/{job_id}/process" for a in process
    )
    routes = {a["route"] for a in access}
    assert {"/api/jobs/{job_id}/events", "/metrics", "unmatched", "/api/health"} <= routes
    refused = next(a for a in access if a["status"] == 401 and a["route"] == "/api/jobs/{job_id}")
    assert refused["path"] == f"/api/jobs/{job_id}?token=REDACTED&limit=5"
    for secret in secrets:
        assert secret not in log


async def test_text_lines_are_readable_and_keep_no_secret(db_dsn) -> None:
    job_id, log, secrets, _ = await _exercise(db_dsn, "text")
    with pytest.raises(json.JSONDecodeError):
        json.loads(log.splitlines()[0])
    assert f'"GET /api/jobs/{job_id}?token=REDACTED&limit=5 HTTP/1.1" 401' in log
    assert f"/api/jobs/{job_id}/events?ticket=REDACTED" in log
    assert "(/api/jobs/{job_id}/process)" in log  # the access line names the route
    assert f"job {job_id} stage 1 chunk 3: 10 items" in log
    for secret in secrets:
        assert secret not in log

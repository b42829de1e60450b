"""The OpenAPI contract: generated from the routes, complete, and kept by the live server
(a bounded schemathesis run with auth finds no 5xx, no answer outside the schema, and no
route that answers without a token)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from starlette.routing import Route

from service.app import create_app
from service.openapi import build_spec
from tests.e2e.helpers import PREPARATION_CALLS, products

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


def test_every_api_route_is_described() -> None:
    app = create_app()
    described = build_spec(app.routes)["paths"]
    for route in app.routes:
        if isinstance(route, Route) and (
            route.path.startswith("/api/") or route.path == "/metrics"
        ):
            methods = {m.lower() for m in (route.methods or ())} - {"head"}
            assert route.path in described, route.path
            assert methods <= set(described[route.path]), (route.path, methods)


async def test_served_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    assert "/api/jobs/{job_id}/process" in spec["paths"]
    events = spec["paths"]["/api/jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert events["security"] == [{"token": []}, {"eventsTicket": []}]
    assert "/api/jobs/{job_id}/events-ticket" in spec["paths"]
    assert spec["paths"]["/api/health"]["get"]["security"] == []
    metrics = spec["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"token": []}, {"metricsToken": []}]
    assert "text/plain" in metrics["responses"]["200"]["content"]


def test_schemathesis_finds_no_server_error_or_contract_break(live_server, tmp_path) -> None:
    # real ids, so generated requests reach past the 404s into the handlers
    with httpx.Client(base_url=live_server.url, headers=live_server.headers()) as c:
        pid = c.post("/api/projects", json={"name": "contract"}).json()["project"]["id"]
        c.post(f"/api/projects/{pid}/catalog", json={"records": products(40, "c")})
        c.post(f"/api/projects/{pid}/items", json={"records": products(40, "i")})
        job = c.post("/api/jobs/create", json={"projectId": pid, "jobType": "enhanced"})
        jid = job.json()["job"]["id"]
        hook = c.post(
            f"/api/projects/{pid}/webhooks",
            json={"url": "https://93.184.215.14/hook", "events": ["job.completed"]},
        )
        wid = hook.json()["webhook"]["id"]
        # deleting the project would leave every later request a 404: that one gets its own
        doomed = c.post("/api/projects", json={"name": "doomed"}).json()["project"]["id"]
        # a live job's event stream stays open: the stream's run watches a finished job
        done = c.post("/api/projects", json={"name": "finished"}).json()["project"]["id"]
        c.post(f"/api/projects/{done}/catalog", json={"records": products(5, "c")})
        c.post(f"/api/projects/{done}/items", json={"records": products(5, "i")})
        finished = c.post(
            "/api/jobs/create", json={"projectId": done, "jobType": "enhanced"}
        ).json()["job"]["id"]
        for _ in range(PREPARATION_CALLS):  # the first calls may only see its preparation
            status = c.post(f"/api/jobs/{finished}/process").json()["job"]["status"]
            if status == "completed":
                break
        assert status == "completed"
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f'[parameters]\n"path.project_id" = "{pid}"\n"path.job_id" = "{jid}"\n'
        f'"path.webhook_id" = "{wid}"\n'
        f'[[operations]]\ninclude-name = "DELETE /api/projects/{{project_id}}"\n'
        f'parameters = {{ "path.project_id" = "{doomed}" }}\n'
        f'[[operations]]\ninclude-name = "GET /api/jobs/{{job_id}}/events"\n'
        f'parameters = {{ "path.job_id" = "{finished}" }}\n'
    )
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(config),
            "run",
            f"{live_server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {live_server.token}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,ignored_auth",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--seed",
            "20261123",
            "--request-timeout",
            "30",
            # one worker: CPython 3.11's ast module is not thread-safe, and hypothesis parses
            # source in its threads ("AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-15000:]
    assert " passed" in output and "failures" not in output.lower().split("summary")[-1]
    with httpx.Client(base_url=live_server.url, headers=live_server.headers()) as c:
        assert c.get(f"/api/projects/{pid}").status_code == 200  # it ran on a live project

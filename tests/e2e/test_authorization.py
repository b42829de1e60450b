"""Who may do what: every route × {no token, wrong token, revoked token, other owner, owner,
admin}. Another owner gets 404 for what is not theirs, and lists show only their own."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import make_tokens
from tests.e2e.helpers import products

DENIED = 401
HIDDEN = 404
ALLOWED = {200, 201, 204, 409}  # 409: authorised, but the job's state forbids it (e.g. retry)
# a public address (no worker runs here: nothing is sent)
WEBHOOK = {"url": "https://93.184.215.14/hook", "events": ["job.completed"]}


@pytest.fixture
async def world(live_server) -> dict:
    """A project with data and a job owned by alice; a revoked token."""
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers()) as c:
        pid = (await c.post("/api/projects", json={"name": "alice's"})).json()["project"]["id"]
        await c.post(f"/api/projects/{pid}/catalog", json={"records": products(30)})
        await c.post(f"/api/projects/{pid}/items", json={"records": products(30)})
        job = await c.post("/api/jobs/create", json={"projectId": pid, "jobType": "enhanced"})
        jid = job.json()["job"]["id"]
        hook = await c.post(f"/api/projects/{pid}/webhooks", json=WEBHOOK)
        wid = hook.json()["webhook"]["id"]
    (revoked,) = await make_tokens(live_server.dsn, ("alice", False))
    pool_dsn = live_server.dsn
    import asyncpg

    conn = await asyncpg.connect(pool_dsn)
    try:
        await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE prefix = $1", revoked[:9]
        )
    finally:
        await conn.close()
    return {"pid": pid, "jid": jid, "wid": wid, "revoked": revoked}


def test_the_matrix_covers_every_api_route() -> None:
    from service.app import create_app

    covered = {
        path.split("?")[0]
        for _, path, _, _ in routes(
            "{project_id}",
            "{job_id}",
            "{project_id}",
            "{record_id}",
            "{item_id}",
            webhook="{webhook_id}",
            doomed_webhook="{webhook_id}",
        )
    }
    for route in create_app().routes:
        path = getattr(route, "path", "")
        if path.startswith("/api/") and path not in ("/api/health", "/api/jobs/process"):
            assert path in covered, f"{path} is missing from the authorization matrix"


def routes(
    pid: str,
    jid: str,
    doomed: str,
    record: str,
    item: str = "0",
    *,
    webhook: str,
    doomed_webhook: str,
) -> list[tuple[str, str, dict | None, int | None]]:
    """(method, path, json body, status for another owner or None for 'own scope, 2xx').
    The deletions, last, act on a project of their own (``doomed``, with ``record`` and
    ``doomed_webhook``)."""
    return [
        ("GET", "/api/projects", None, None),
        ("POST", "/api/projects", {"name": "p"}, None),
        ("GET", f"/api/projects/{pid}", None, HIDDEN),
        ("POST", f"/api/projects/{pid}/catalog", {"records": [{"id": "x", "name": "y"}]}, HIDDEN),
        ("POST", f"/api/projects/{pid}/items", {"records": [{"id": "x", "name": "y"}]}, HIDDEN),
        ("GET", "/api/jobs", None, None),
        ("GET", f"/api/jobs?projectId={pid}", None, HIDDEN),
        ("POST", "/api/jobs/create", {"projectId": pid, "jobType": "enhanced"}, HIDDEN),
        ("GET", "/api/jobs/status", None, None),
        ("POST", "/api/jobs/cleanup", {"daysOld": 3650}, None),
        ("GET", f"/api/jobs/{jid}", None, HIDDEN),
        ("POST", f"/api/jobs/{jid}/process", None, HIDDEN),
        ("GET", f"/api/jobs/{jid}/events", None, HIDDEN),
        ("POST", f"/api/jobs/{jid}/events-ticket", None, HIDDEN),
        ("GET", f"/api/jobs/{jid}/matches", None, HIDDEN),
        ("GET", f"/api/jobs/{jid}/matches?format=csv", None, HIDDEN),
        ("POST", f"/api/jobs/{jid}/pause", None, HIDDEN),
        ("POST", f"/api/jobs/{jid}/resume", None, HIDDEN),
        ("POST", f"/api/jobs/{jid}/retry", None, HIDDEN),
        ("POST", f"/api/jobs/{jid}/retry-failed", None, HIDDEN),
        ("GET", f"/api/jobs/{jid}/failed-items", None, HIDDEN),
        ("GET", f"/api/jobs/{jid}/chunks", None, HIDDEN),
        ("GET", f"/api/jobs/{jid}/items/{item}/candidates", None, HIDDEN),
        ("GET", f"/api/jobs/{jid}/review", None, HIDDEN),
        (
            "POST",
            f"/api/jobs/{jid}/review",
            {"decisions": [{"itemId": item, "catalogId": None, "decision": "no-match"}]},
            HIDDEN,
        ),
        ("POST", f"/api/jobs/{jid}/cancel", None, HIDDEN),
        ("PATCH", f"/api/jobs/{jid}", {"status": "failed", "error": "x"}, HIDDEN),
        ("GET", f"/api/projects/{pid}/webhooks", None, HIDDEN),
        ("POST", f"/api/projects/{pid}/webhooks", WEBHOOK, HIDDEN),
        ("GET", f"/api/projects/{pid}/webhooks/{webhook}/deliveries", None, HIDDEN),
        ("DELETE", f"/api/projects/{doomed}/webhooks/{doomed_webhook}", None, HIDDEN),
        ("DELETE", f"/api/projects/{doomed}/items/{record}", None, HIDDEN),
        ("DELETE", f"/api/projects/{doomed}/catalog/{record}", None, HIDDEN),
        ("DELETE", f"/api/projects/{doomed}?force=true", None, HIDDEN),
    ]


async def _doomed_project(live_server) -> tuple[str, str]:
    """A project of alice's with one record "x" in its catalog and items, and a webhook, to
    delete; and the webhook's id."""
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers()) as c:
        pid = (await c.post("/api/projects", json={"name": "doomed"})).json()["project"]["id"]
        for kind in ("catalog", "items"):
            await c.post(
                f"/api/projects/{pid}/{kind}", json={"records": [{"id": "x", "name": "y"}]}
            )
        hook = await c.post(f"/api/projects/{pid}/webhooks", json=WEBHOOK)
    return pid, hook.json()["webhook"]["id"]


async def test_authorization_matrix(live_server, world) -> None:
    pid, jid = world["pid"], world["jid"]
    callers = [
        ("no token", None, DENIED),
        ("wrong token", "cm_not-a-real-token", DENIED),
        ("revoked token", world["revoked"], DENIED),
        ("malformed header", "", DENIED),
        ("other owner", live_server.other_token, "other"),
        ("owner", live_server.token, "allowed"),
        ("admin", live_server.admin_token, "allowed"),
    ]
    failures = []
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as c:
        for who, token, expected in callers:
            doomed, doomed_webhook = await _doomed_project(live_server)
            for method, path, body, other_status in routes(
                pid, jid, doomed, "x", webhook=world["wid"], doomed_webhook=doomed_webhook
            ):
                headers = {}
                if token is not None:
                    headers["Authorization"] = f"Bearer {token}" if token else "Basic abc"
                if path.endswith("/events"):  # a stream: its status is what counts here
                    async with c.stream(method, path, headers=headers) as r:
                        if r.status_code != 200:
                            await r.aread()  # the error's JSON, checked below
                else:
                    r = await c.request(method, path, json=body, headers=headers)
                if expected == "other":
                    want = {other_status} if other_status else {200, 201}
                elif expected == "allowed":
                    want = ALLOWED
                else:
                    want = {expected}
                if r.status_code not in want:
                    failures.append(f"{who}: {method} {path} -> {r.status_code}, want {want}")
                if r.status_code == DENIED:
                    assert r.headers.get("www-authenticate", "").startswith("Bearer")
                    assert r.json()["error"]["code"] == "unauthorized"
    assert not failures, "\n".join(failures)


async def test_metrics_are_for_admins(live_server, world) -> None:
    """GET /metrics (no owner's data, but the whole service's): an admin token (or
    CHUNKMATCH_METRICS_TOKEN, tests/e2e/test_metrics.py); any other caller is refused."""
    callers = [
        (None, DENIED),
        ("cm_not-a-real-token", DENIED),
        (world["revoked"], DENIED),
        ("", DENIED),
        (live_server.other_token, 403),
        (live_server.token, 403),
        (live_server.admin_token, 200),
    ]
    async with httpx.AsyncClient(base_url=live_server.url) as c:
        for token, status in callers:
            headers = {}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}" if token else "Basic abc"
            r = await c.get("/metrics", headers=headers)
            assert r.status_code == status, (token, r.text)
            if status != 200:
                assert r.json()["error"]["code"] == {401: "unauthorized", 403: "forbidden"}[status]


async def test_lists_show_only_ones_own(live_server, world) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as c:
        bob = live_server.headers(live_server.other_token)
        admin = live_server.headers(live_server.admin_token)
        bob_projects = (await c.get("/api/projects", headers=bob)).json()["projects"]
        assert world["pid"] not in [p["id"] for p in bob_projects]
        bob_jobs = (await c.get("/api/jobs", headers=bob)).json()["jobs"]
        assert world["jid"] not in [j["id"] for j in bob_jobs]
        admin_projects = (await c.get("/api/projects", headers=admin)).json()["projects"]
        assert world["pid"] in [p["id"] for p in admin_projects]
        assert {p["owner"] for p in admin_projects} >= {"alice"}


async def test_tokens_do_not_open_the_cron_route(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as c:
        for token in (live_server.token, live_server.admin_token):
            r = await c.post("/api/jobs/process", json={}, headers=live_server.headers(token))
            assert r.status_code == 401


async def test_public_routes_need_no_token(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as c:
        assert (await c.get("/api/health")).status_code == 200
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/static/job-manager.js")).status_code == 200

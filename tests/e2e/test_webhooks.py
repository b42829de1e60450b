"""Webhooks over real HTTP: a receiver on 127.0.0.1 (CHUNKMATCH_WEBHOOK_ALLOW_PRIVATE on)
checks every signature with the Standard Webhooks library and by the algorithm itself, and
gets each event of a job once (de-duplicated by webhook-id), in order, also after being
down for a while; the address rules refuse what they must, at registration and at delivery."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from service.webhooks import new_secret
from tests.conftest import server_with
from tests.e2e.helpers import create_job, create_project, parse, products, upload, value
from tests.e2e.processes import start_worker, wait_until
from tests.fakes.http import Drop, FakeHTTPServer, Reply, Request

ALL_EVENTS = ["job.completed", "job.failed", "job.cancelled", "job.stage_completed"]
FAST_RETRIES = {
    "serve_worker": True,
    "webhook_allow_private": True,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_seconds": 0.4,
    "worker_poll_seconds": 0.5,
}


class Receiver(FakeHTTPServer):
    """Webhook endpoints (one path per webhook): verifies each request with that webhook's
    secret, keeps what it got; while ``down`` it fails every request (alternately with a
    dropped connection and a 503)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, str] = {}  # path -> secret
        self.down = False
        self.received: list[tuple[float, dict[str, str], dict]] = []
        self.refused = 0
        self.bad_signatures: list[str] = []

    async def handle(self, request: Request) -> Reply | Drop:
        if self.down:
            self.refused += 1
            return Drop() if self.refused % 2 else Reply(503, b"{}")
        secret = self.secrets[request.path]
        try:
            payload = Webhook(secret).verify(request.body, request.headers)
        except Exception as exc:  # noqa: BLE001 - any failure is a bad signature
            self.bad_signatures.append(f"standardwebhooks: {exc}")
            return Reply(400, b"{}")
        if not _own_check(secret, request.headers, request.body):
            self.bad_signatures.append("the algorithm itself disagrees")
            return Reply(400, b"{}")
        with self.lock:
            self.received.append((time.time(), request.headers, payload))
        return Reply(204)

    def events(self) -> dict[str, dict]:
        """What was received, de-duplicated by webhook-id, in order of first arrival."""
        with self.lock:
            unique: dict[str, dict] = {}
            for _, headers, payload in self.received:
                unique.setdefault(headers["webhook-id"], payload)
            return unique


def _own_check(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks' signature, computed here from the spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return f"v1,{expected}" in headers["webhook-signature"].split(" ")


async def _project(c: httpx.AsyncClient, n: int, name: str = "hooks") -> str:
    pid = await create_project(c, name)
    await upload(c, pid, "catalog", products(n, "c"))
    await upload(c, pid, "items", products(n, "i"))
    return pid


async def _register(
    c: httpx.AsyncClient, pid: str, url: str, events=ALL_EVENTS, receiver: Receiver | None = None
) -> dict:
    r = await c.post(f"/api/projects/{pid}/webhooks", json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    hook = r.json()["webhook"]
    if receiver is not None:
        receiver.secrets[httpx.URL(url).path] = hook["secret"]
    return hook


def _by_job(events: dict[str, dict]) -> dict[str, list[str]]:
    jobs: dict[str, list[str]] = {}
    for event in events.values():
        jobs.setdefault(event["data"]["job"]["id"], []).append(event["type"])
    return jobs


@pytest.fixture
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


async def test_a_job_s_events_arrive_signed_once_and_in_order(
    pg_server_dsn, template_dsn, receiver
) -> None:
    async with (
        server_with(pg_server_dsn, **FAST_RETRIES) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=60) as c,
    ):
        pid = await _project(c, 40)
        hook = await _register(c, pid, f"{receiver.url}/hook", receiver=receiver)
        secret = base64.b64decode(hook["secret"].removeprefix("whsec_"), validate=True)
        assert hook["secret"].startswith("whsec_") and len(secret) == 32
        listed = (await c.get(f"/api/projects/{pid}/webhooks")).json()["webhooks"]
        assert listed == [{k: v for k, v in hook.items() if k != "secret"}]

        job = await create_job(c, pid, {"chunkSize": 10})
        await wait_until(lambda: _arrived(receiver, 2), timeout=60)
        final = (await c.get(f"/api/jobs/{job['id']}")).json()["job"]
        events = receiver.events()
        assert _by_job(events) == {job["id"]: ["job.stage_completed", "job.completed"]}
        assert receiver.bad_signatures == []
        completed = next(e for e in events.values() if e["type"] == "job.completed")
        sent = completed["data"]["job"]  # the job as GET shows it
        assert sent.keys() == final.keys()
        for key in ("id", "status", "processedItems", "matchesFound", "completedAt"):
            assert sent[key] == final[key], key
        stage = next(e for e in events.values() if e["type"] == "job.stage_completed")
        assert stage["data"]["stage"] == {"number": 1, "name": "enhanced"}
        # how long after the commit the receiver had it (printed for the record)
        arrival = max(t for t, _, p in receiver.received if p["type"] == "job.completed")
        committed = datetime.fromisoformat(final["completedAt"]).timestamp()
        print(f"job.completed arrived {1000 * (arrival - committed):.0f} ms after its commit")

        async def recorded() -> list[dict] | None:
            # the receiver has an event a moment before its sender records the answer
            url = f"/api/projects/{pid}/webhooks/{hook['id']}/deliveries"
            deliveries = (await c.get(url)).json()["deliveries"]
            return None if any(d["status"] == "pending" for d in deliveries) else deliveries

        deliveries = await wait_until(recorded, timeout=30)
        assert [(d["eventType"], d["status"], d["statusCode"]) for d in deliveries] == [
            ("job.completed", "delivered", 204),
            ("job.stage_completed", "delivered", 204),
        ]
        ids = {h["webhook-id"] for _, h, _ in receiver.received}
        assert ids == {d["eventId"] for d in deliveries}

        r = await c.delete(f"/api/projects/{pid}/webhooks/{hook['id']}")
        assert r.status_code == 204
        assert (await c.get(f"/api/projects/{pid}/webhooks")).json()["webhooks"] == []


async def _delivery_counts(c: httpx.AsyncClient, server) -> dict[str, float]:  # noqa: ANN001
    r = await c.get("/metrics", headers=server.headers(server.admin_token))
    scrape = parse(r.text)
    return {
        outcome: value(scrape, "chunkmatch_webhook_deliveries_total", outcome=outcome)
        for outcome in ("delivered", "retrying")
    }


async def _arrived(receiver: Receiver, n: int) -> bool:
    return len(receiver.events()) >= n


async def test_a_receiver_down_for_a_while_gets_every_event_in_order(
    pg_server_dsn, template_dsn, receiver
) -> None:
    receiver.down = True
    async with (
        server_with(pg_server_dsn, **FAST_RETRIES) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=60) as c,
    ):
        before = await _delivery_counts(c, server)
        jobs, hooks = [], []
        for n in range(3):
            pid = await _project(c, 500 if n == 2 else 30, f"down {n}")
            url = f"{receiver.url}/hook/{n}"
            hooks.append((pid, await _register(c, pid, url, receiver=receiver)))
            # the third job has 500 one-item chunks: it is cancelled long before its end
            jobs.append(await create_job(c, pid, {"chunkSize": 1 if n == 2 else 10}))
        cancelled = jobs[-1]
        r = await c.post(f"/api/jobs/{cancelled['id']}/cancel")
        assert r.status_code == 200, r.text

        async def finished() -> bool:
            states = [(await c.get(f"/api/jobs/{j['id']}")).json()["job"] for j in jobs]
            return all(s["status"] in ("completed", "cancelled") for s in states)

        await wait_until(finished, timeout=90)
        # while it is down, attempts pile up, each recorded with its error
        pid, hook = hooks[0]
        url = f"/api/projects/{pid}/webhooks/{hook['id']}/deliveries"

        async def retried() -> list[dict]:
            deliveries = (await c.get(url)).json()["deliveries"]
            return [d for d in deliveries if d["attempts"] >= 3] and deliveries

        deliveries = await wait_until(retried, timeout=60)
        assert all(d["status"] == "pending" for d in deliveries)
        assert all(d["error"] and d["nextAttemptAt"] for d in deliveries if d["attempts"])
        assert receiver.received == []
        receiver.down = False
        await wait_until(lambda: _arrived(receiver, 5), timeout=60)
        await asyncio.sleep(0.5)  # nothing more may come: time is the subject here
        events = receiver.events()
        assert receiver.bad_signatures == []
        assert _by_job(events) == {
            jobs[0]["id"]: ["job.stage_completed", "job.completed"],
            jobs[1]["id"]: ["job.stage_completed", "job.completed"],
            cancelled["id"]: ["job.cancelled"],
        }
        # the process's counter saw each attempt: the failed ones, then the five that landed
        # (counters are per process, and this server runs in the tests' process: a difference)
        after = await _delivery_counts(c, server)
        assert after["delivered"] - before["delivered"] == 5
        assert after["retrying"] - before["retrying"] >= 3


async def test_a_separate_worker_delivers_too(pg_server_dsn, template_dsn, receiver) -> None:
    # `chunkmatch worker` (its own process, settings from the environment) drives the job
    # and delivers its events; the web process runs no worker and refuses loopback URLs, so
    # the webhook is written as an operator on a private network would have it
    private = {"CHUNKMATCH_WEBHOOK_ALLOW_PRIVATE": "true", "WORKER_POLL_SECONDS": "0.5"}
    async with (
        server_with(pg_server_dsn) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=60) as c,
    ):
        pid = await _project(c, 20, "worker")
        conn = await asyncpg.connect(server.dsn)
        try:
            secret = new_secret()
            await conn.execute(
                "INSERT INTO webhooks (project_id, url, events, secret) VALUES ($1, $2, $3, $4)",
                uuid.UUID(pid),
                f"{receiver.url}/worker",
                ["job.completed"],
                secret,
            )
            receiver.secrets["/worker"] = secret
        finally:
            await conn.close()
        worker = start_worker(server.dsn, **private)
        try:
            job = await create_job(c, pid, {"chunkSize": 5})
            await wait_until(lambda: _arrived(receiver, 1), timeout=90)
            assert _by_job(receiver.events()) == {job["id"]: ["job.completed"]}
            assert receiver.bad_signatures == []
        finally:
            worker.terminate()
            assert worker.wait(60) == 0


async def test_registration_refuses_what_the_rules_forbid_and_writes_nothing(client) -> None:
    pid = await create_project(client, "ssrf")
    cases = [
        ({"url": "http://hooks.example.com/x"}, "https"),
        ({"url": "ftp://hooks.example.com/x"}, "https"),
        ({"url": "https://127.0.0.1/x"}, "public_address"),
        ({"url": "https://localhost:8443/x"}, "public_address"),
        ({"url": "https://10.1.2.3/x"}, "public_address"),
        ({"url": "https://192.168.0.10/x"}, "public_address"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "public_address"),
        ({"url": "https://224.0.0.1/x"}, "public_address"),
        ({"url": "https://[::1]/x"}, "public_address"),
        ({"url": "https://[::ffff:127.0.0.1]/x"}, "public_address"),
        ({"url": "https://[fe80::1]/x"}, "public_address"),
        ({"url": "https://0.0.0.0/x"}, "public_address"),
        ({"url": "https://no-such-host.invalid/x"}, "resolvable"),
        ({"url": "https://user:pw@93.184.215.14/x"}, "url"),
        ({"url": "not a url"}, "https"),
        ({"url": 42}, "url"),
        ({"events": []}, "events"),
        ({"events": ["job.exploded"]}, "events"),
        ({"events": ["job.failed", "job.failed"]}, "events"),
    ]
    for change, rule in cases:
        body = {"url": "https://93.184.215.14/hook", "events": ["job.completed"], **change}
        r = await client.post(f"/api/projects/{pid}/webhooks", json=body)
        assert r.status_code == 422, (change, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error" and error["details"] == {"rule": rule}, (
            change,
            error,
        )
    assert (await client.get(f"/api/projects/{pid}/webhooks")).json()["webhooks"] == []
    # a public address is fine (nothing is sent: this server runs no worker)
    r = await client.post(
        f"/api/projects/{pid}/webhooks",
        json={"url": "https://93.184.215.14/hook", "events": ["job.completed"]},
    )
    assert r.status_code == 201, r.text


async def test_other_owners_see_no_webhook(live_server, client) -> None:
    pid = await create_project(client, "mine")
    hook = await _register(client, pid, "https://93.184.215.14/hook", ["job.failed"])
    bob = live_server.headers(live_server.other_token)
    base = f"/api/projects/{pid}/webhooks"
    for method, path in [
        ("GET", base),
        ("POST", base),
        ("DELETE", f"{base}/{hook['id']}"),
        ("GET", f"{base}/{hook['id']}/deliveries"),
    ]:
        body = {"url": "https://93.184.215.14/x", "events": ["job.failed"]}
        r = await client.request(method, path, headers=bob, json=body if method == "POST" else None)
        assert r.status_code == 404, (method, path, r.text)
    listed = (await client.get(base)).json()["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]


async def test_delivery_checks_the_address_again(pg_server_dsn, template_dsn, receiver) -> None:
    # the rules hold at delivery too: a webhook whose host now resolves to a loopback
    # address (as after a DNS change) is refused, and its receiver gets nothing
    overrides = {**FAST_RETRIES, "webhook_allow_private": False}
    async with (
        server_with(pg_server_dsn, **overrides) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=60) as c,
    ):
        pid = await _project(c, 10)
        hook = await _register(c, pid, "https://93.184.215.14/hook", ["job.completed"])
        conn = await asyncpg.connect(server.dsn)
        try:  # what DNS would now answer for the registered host
            port = receiver.url.rsplit(":", 1)[1]
            await conn.execute(
                "UPDATE webhooks SET url = $1 WHERE id = $2",
                f"https://localhost:{port}/hook",
                hook["id"],
            )
        finally:
            await conn.close()
        await create_job(c, pid, {"chunkSize": 10})
        url = f"/api/projects/{pid}/webhooks/{hook['id']}/deliveries"

        async def attempted() -> list[dict]:
            deliveries = (await c.get(url)).json()["deliveries"]
            return [d for d in deliveries if d["attempts"] >= 2]

        [delivery] = await wait_until(attempted, timeout=60)
        assert delivery["status"] == "pending" and delivery["statusCode"] is None
        assert delivery["error"].startswith("refused:") and "loopback" in delivery["error"]
        assert receiver.received == [] and receiver.refused == 0


def test_payload_schema_is_in_the_openapi_document() -> None:
    from service.app import create_app
    from service.openapi import build_spec

    spec = build_spec(create_app().routes)
    post = spec["paths"]["/api/projects/{project_id}/webhooks"]["post"]
    callback = post["callbacks"]["jobEvent"]["{$request.body#/url}"]["post"]
    assert callback["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WebhookEvent"
    }
    event = spec["components"]["schemas"]["WebhookEvent"]
    assert set(event["properties"]["type"]["enum"]) == set(ALL_EVENTS)
    json.dumps(spec)  # serialisable as served

"""The database goes away and comes back: 503 with Retry-After meanwhile, no restart needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from service.database import EmbeddedPostgres
from tests.conftest import free_port
from tests.e2e.processes import create_token, wait_healthy

CHUNKMATCH = str(Path(sys.executable).parent / "chunkmatch")


def _until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_requests_get_503_during_an_outage_and_the_service_recovers() -> None:
    folder = Path(tempfile.mkdtemp(prefix="chunkmatch-outage-"))
    pg = EmbeddedPostgres(folder)
    dsn = pg.start()
    token = create_token(dsn)
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DATABASE_URL=dsn, CHUNKMATCH_DB_RETRY_AFTER="3")
    proc = subprocess.Popen(
        [CHUNKMATCH, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(url, proc)
        project = httpx.post(
            f"{url}/api/projects", json={"name": "before"}, headers=headers
        ).json()["project"]

        pg.stop()
        r = _until(lambda: (x := httpx.get(f"{url}/api/health")).status_code == 503 and x)
        assert r.headers["retry-after"] == "3"
        assert r.json()["success"] is False
        for method, path in [
            ("GET", f"/api/projects/{project['id']}"),
            ("POST", "/api/projects"),
            ("GET", "/api/jobs"),
        ]:
            r = httpx.request(method, url + path, json={"name": "x"}, headers=headers)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "database_unavailable"
            assert r.headers["retry-after"] == "3"
        assert proc.poll() is None  # the service is still up

        pg.start()
        _until(lambda: httpx.get(f"{url}/api/health").status_code == 200)
        r = httpx.get(f"{url}/api/projects/{project['id']}", headers=headers)
        assert r.status_code == 200 and r.json()["project"]["name"] == "before"
    finally:
        proc.terminate()
        proc.wait(30)
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)

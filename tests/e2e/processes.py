"""Real chunkmatch processes for resilience tests: servers and workers as subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import free_port

CHUNKMATCH = str(Path(sys.executable).parent / "chunkmatch")
LOG_DIR = Path(tempfile.gettempdir()) / "chunkmatch-test-logs"


def process_env(dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUNKMATCH_", "JOB_"))}
    env.update(DATABASE_URL=dsn, JOB_LEASE_SECONDS="10", CHUNKMATCH_LOG_LEVEL="WARNING")
    env.update(CHUNKMATCH_RATE_LIMIT="0")  # dozens of drivers share one token here
    # each test says who drives its jobs; a server's built-in worker only when it asks
    env.update(CHUNKMATCH_SERVE_WORKER="off")
    env.update(extra)
    return env


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll the health route until it answers 200 (fail at once if the process exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server process exited"
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not become healthy")


@dataclass
class ServiceProcess:
    dsn: str
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return LOG_DIR / f"serve-{self.port}.log"

    def start(self, *, wait: bool = True) -> ServiceProcess:
        LOG_DIR.mkdir(exist_ok=True)
        # a restart appends to this server's log; a first start begins a new one (the port
        # may have served another run's server, whose lines are not this test's)
        mode = "a" if self.proc is not None else "w"
        log = open(self.log_path, mode)  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [CHUNKMATCH, "serve", "--port", str(self.port)],
            env=process_env(self.dsn, **self.env_extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        wait_healthy(self.url, self.proc, timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def create_token(dsn: str, owner: str = "tester", *, admin: bool = False) -> str:
    """A token made the way an operator makes one: `chunkmatch token create`."""
    args = [CHUNKMATCH, "token", "create", "--owner", owner] + (["--admin"] if admin else [])
    result = subprocess.run(
        args, env=process_env(dsn), capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_worker(dsn: str, **env_extra: str) -> subprocess.Popen:
    LOG_DIR.mkdir(exist_ok=True)
    log = open(LOG_DIR / f"worker-{uuid.uuid4().hex[:6]}.log", "a")  # noqa: SIM115
    return subprocess.Popen(
        [CHUNKMATCH, "worker"],
        env=process_env(dsn, **env_extra),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def job_invariants(dsn: str, job_id: str) -> dict[str, int]:
    """Check the exactly-once invariants of a finished job; return the counts."""
    conn = await asyncpg.connect(dsn)
    try:
        jid = uuid.UUID(job_id)
        job = await conn.fetchrow("SELECT * FROM matching_jobs WHERE id = $1", jid)
        chunks = await conn.fetch(
            "SELECT seq, ord_from, ord_to, status, items, attempts FROM job_chunks "
            "WHERE job_id = $1 ORDER BY ord_from",
            jid,
        )
        match_rows = await conn.fetchval("SELECT count(*) FROM matches WHERE job_id = $1", jid)
        duplicate_items = await conn.fetchval(
            "SELECT count(*) FROM (SELECT item_id FROM matches WHERE job_id = $1 "
            "GROUP BY item_id HAVING count(*) > 1) d",
            jid,
        )
        matched_outside = await conn.fetchval(
            "SELECT count(*) FROM matches m WHERE m.job_id = $1 AND NOT EXISTS ("
            "SELECT 1 FROM job_items ji WHERE ji.job_id = m.job_id AND ji.item_id = m.item_id)",
            jid,
        )
    finally:
        await conn.close()
    total = job["total_items"]
    assert job["status"] == "completed", dict(job)
    assert job["processed_items"] == total
    assert job["matches_found"] == match_rows
    assert duplicate_items == 0
    assert matched_outside == 0
    assert all(c["status"] == "done" for c in chunks)
    # the committed chunks tile 0..total exactly once: no range committed twice, none lost
    assert chunks[0]["ord_from"] == 0 and chunks[-1]["ord_to"] == total
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a["ord_to"] == b["ord_from"], (dict(a), dict(b))
    assert sum(c["items"] for c in chunks) == total
    return {
        "chunks": len(chunks),
        "reclaimed_chunks": sum(1 for c in chunks if c["attempts"] > 1),
        "matches": match_rows,
        "duplicates": duplicate_items,
        "total": total,
    }


def seed_project(
    url: str, token: str, n_items: int, n_catalog: int, *, chunk_size: int
) -> tuple[str, str]:
    """Create a project with product-like data and a job; return (project_id, job_id)."""
    from tests.e2e.helpers import products

    with httpx.Client(base_url=url, timeout=120, headers=auth(token)) as client:
        pid = client.post("/api/projects", json={"name": "resilience"}).json()["project"]["id"]
        catalog = products(n_catalog, "c")
        items = [
            {"id": f"i{n}", "name": catalog[n % n_catalog]["name"].lower() + f" v{n // n_catalog}"}
            for n in range(n_items)
        ]
        for kind, rows in (("catalog", catalog), ("items", items)):
            r = client.post(f"/api/projects/{pid}/{kind}", json={"records": rows})
            assert r.status_code == 200, r.text
        r = client.post(
            "/api/jobs/create",
            json={"projectId": pid, "jobType": "enhanced", "config": {"chunkSize": chunk_size}},
        )
        assert r.status_code == 201, r.text
        return pid, r.json()["job"]["id"]


class OutputReader:
    """Collects a subprocess's text output line by line in a thread, so a test can wait for
    a line (with a deadline) while the process keeps running."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        self.ended = False  # the process closed its output
        self._changed = threading.Condition()
        self._proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, predicate, *, start: int = 0, timeout: float = 120.0) -> int:
        """Index of the first line from ``start`` for which ``predicate`` holds; fail if
        the process ends its output or the deadline passes first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for n in range(start, len(self.lines)):
                    if predicate(self.lines[n]):
                        return n
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    raise AssertionError("output never showed it:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 1.0))


@dataclass
class PrintedToken:
    """Where `chunkmatch serve`'s closing announcement stands in its output, and the token."""

    first_rule: int
    last_rule: int
    token: str


def start_serve(
    command: list[str], env: dict[str, str], *, cwd: Path | None = None
) -> tuple[subprocess.Popen, OutputReader]:
    """Start `chunkmatch serve` (or scripts/serve) with its output read line by line."""
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, OutputReader(proc)


def printed_token(output: OutputReader) -> PrintedToken:
    """Wait for the new local admin token that `chunkmatch serve` prints last, set apart."""
    from service.local_token import ANNOUNCEMENT_RULE

    first = output.wait_for(lambda line: line == ANNOUNCEMENT_RULE)
    last = output.wait_for(lambda line: line == ANNOUNCEMENT_RULE, start=first + 1)
    token = next(ln.strip() for ln in output.lines[first:last] if ln.strip().startswith("cm_"))
    return PrintedToken(first, last, token)


def stop_serve(proc: subprocess.Popen) -> None:
    """SIGTERM, as Ctrl+C or a supervisor would; kill only if it does not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_until(predicate, *, timeout: float, interval: float = 0.05):
    """Await ``predicate()`` every ``interval`` seconds until it returns something truthy
    (returned), or fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")

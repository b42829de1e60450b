"""Polls from memory and live push, through the real service (prints figures, asserts nothing).

- ``poll``: ``GET /api/jobs/{id}`` of a running job against a bare Starlette JSON route
  answering the same JSON, side by side in one run (alternating rounds), both served by
  uvicorn with the same defaults on loopback, measured with ``wrk`` (64 connections).
  Goal: poll req/s >= 0.5 x the bare route's, p99 < 50 ms.
- ``sse``: N subscribers (default 1,000) on one process's ``/api/jobs/{id}/events``,
  while another client advances the job one chunk at a time: how many of the
  (subscriber, chunk) pairs arrived, and how late after the chunk's commit.
  Goal: each subscriber receives every update within 1 s.

    .venv/bin/python benchmarks/live_push.py poll [--seconds 10] [--rounds 2]
    .venv/bin/python benchmarks/live_push.py sse [--subscribers 1000] [--chunks 20]

Starts ``chunkmatch serve`` (embedded PostgreSQL in a temporary folder, or DATABASE_URL
when set; no built-in worker: only this script advances the job). Needs ``wrk`` for
``poll`` (``apt-get install wrk``). Print ``uptime`` beside the figures: the machine is
shared and the numbers move with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CHUNKMATCH = str(Path(sys.executable).parent / "chunkmatch")
UVICORN = str(Path(sys.executable).parent / "uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, path: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{url} did not start")
        time.sleep(0.1)


@contextlib.contextmanager
def chunkmatch_server() -> Iterator[tuple[str, str]]:
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="chunkmatch-bench-")
    env = dict(
        os.environ,
        CHUNKMATCH_DATA_DIR=data_dir,
        CHUNKMATCH_LOG_LEVEL="WARNING",  # no access log, as the bare server below
        CHUNKMATCH_SERVE_WORKER="off",
        CHUNKMATCH_RATE_LIMIT="0",
    )
    log = open(Path(data_dir) / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [CHUNKMATCH, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, "/api/health")
        yield url, (Path(data_dir) / "admin-token").read_text().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
        shutil.rmtree(Path(data_dir) / "pgdata", ignore_errors=True)


@contextlib.contextmanager
def bare_server(body: dict) -> Iterator[str]:
    """A bare Starlette app with one JSON route answering ``body``, under uvicorn."""
    folder = Path(tempfile.mkdtemp(prefix="chunkmatch-bare-"))
    (folder / "body.json").write_text(json.dumps(body))
    (folder / "bare_json.py").write_text(
        "import json, pathlib\n"
        "from starlette.applications import Starlette\n"
        "from starlette.responses import JSONResponse\n"
        "from starlette.routing import Route\n"
        "BODY = json.loads((pathlib.Path(__file__).parent / 'body.json').read_text())\n"
        "async def job(request):\n"
        "    return JSONResponse(BODY)\n"
        "app = Starlette(routes=[Route('/api/jobs/{job_id}', job)])\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [UVICORN, "bare_json:app", "--port", str(port), "--log-level", "warning"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, "/api/jobs/x")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def make_job(url: str, token: str, *, items: int, chunk_size: int) -> str:
    """A project with ``items`` items and as many catalog records, and a job on it."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        pid = c.post("/api/projects", json={"name": "live push"}).json()["project"]["id"]
        rows = [{"id": f"r{i}", "name": f"Acme widget model WX{i:05d} blue"} for i in range(items)]
        for kind in ("catalog", "items"):
            c.post(f"/api/projects/{pid}/{kind}", json={"records": rows}).raise_for_status()
        r = c.post(
            "/api/jobs/create",
            json={"projectId": pid, "jobType": "enhanced", "config": {"chunkSize": chunk_size}},
        )
        r.raise_for_status()
        return r.json()["job"]["id"]


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, *, seconds: int, connections: int, threads: int, token: str
) -> tuple[float, float]:
    """(requests/s, p99 ms) of ``wrk`` against ``url``."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw error answers from {url}:\n{out}")
    p99 = _P99.search(out)
    return float(_RPS.search(out)[1]), float(p99[1]) * _UNIT[p99[2]]


def poll(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} cores)")
    with chunkmatch_server() as (url, token):
        job_id = make_job(url, token, items=1000, chunk_size=100)
        headers = {"Authorization": f"Bearer {token}"}
        httpx.post(f"{url}/api/jobs/{job_id}/process", headers=headers, timeout=120)
        body = httpx.get(f"{url}/api/jobs/{job_id}", headers=headers).json()
        assert body["job"]["status"] == "processing", body
        with bare_server(body) as bare:
            results: dict[str, list[tuple[float, float]]] = {"bare": [], "poll": []}
            targets = {"bare": f"{bare}/api/jobs/{job_id}", "poll": f"{url}/api/jobs/{job_id}"}
            for _ in range(args.rounds):  # alternate, so both see the same machine
                for name, target in targets.items():
                    results[name].append(
                        wrk(
                            target,
                            seconds=args.seconds,
                            connections=args.connections,
                            threads=args.threads,
                            token=token,
                        )
                    )
    print(
        f"{args.connections} connections, {args.threads} wrk threads, {args.rounds} rounds of "
        f"{args.seconds} s each, same JSON body ({len(json.dumps(body))} bytes)"
    )
    for name, runs in results.items():
        print(
            f"  {name:5s} req/s "
            + " ".join(f"{r:8.0f}" for r, _ in runs)
            + "   p99 ms "
            + " ".join(f"{p:6.1f}" for _, p in runs)
        )
    ratio = statistics.mean(r for r, _ in results["poll"]) / statistics.mean(
        r for r, _ in results["bare"]
    )
    worst_p99 = max(p for _, p in results["poll"])
    print(
        f"  poll / bare req/s: {ratio:.2f} (goal >= 0.5); poll p99 max {worst_p99:.1f} ms (goal < 50)"
    )
    print(f"load after: {os.getloadavg()[0]:.2f}")


async def _subscriber(
    host: str, port: int, path: str, token: str, arrivals: dict, ready: asyncio.Event, n: int
) -> None:
    """One raw SSE client: notes when each processedItems value first arrived."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    seen: dict[int, float] = {}
    arrivals[n] = seen
    buffer = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buffer += data
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                for line in frame.split(b"\n"):
                    if line.startswith(b"data: "):
                        job = json.loads(line[6:])
                        seen.setdefault(job["processedItems"], time.monotonic())
                        ready.set()
                        if job["status"] in ("completed", "failed", "cancelled"):
                            return
    finally:
        writer.close()


async def sse(args: argparse.Namespace) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.subscribers + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} cores)")
    with chunkmatch_server() as (url, token):
        chunk = 50
        job_id = await asyncio.to_thread(
            make_job, url, token, items=chunk * args.chunks, chunk_size=chunk
        )
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        arrivals: dict[int, dict[int, float]] = {}
        readies = [asyncio.Event() for _ in range(args.subscribers)]
        started = time.monotonic()
        tasks = []
        for n in range(args.subscribers):
            tasks.append(
                asyncio.create_task(
                    _subscriber(
                        host, port, f"/api/jobs/{job_id}/events", token, arrivals, readies[n], n
                    )
                )
            )
            if n % 100 == 99:
                await asyncio.sleep(0)  # let the connections open as they go
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        connected = time.monotonic() - started
        sent: dict[int, tuple[float, float]] = {}  # processedItems -> (request sent, answered)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as c:
            for _ in range(args.chunks):
                t0 = time.monotonic()
                job = (await c.post(f"/api/jobs/{job_id}/process")).json()["job"]
                sent[job["processedItems"]] = (t0, time.monotonic())
                await asyncio.sleep(args.gap)
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    late_from_answer, late_from_request, missing = [], [], 0
    for seen in arrivals.values():
        for processed, (t0, t1) in sent.items():
            at = seen.get(processed)
            if at is None:
                missing += 1
                continue
            late_from_answer.append(max(0.0, at - t1))
            late_from_request.append(at - t0)
    pairs = len(arrivals) * len(sent)

    def q(values: list[float], p: float) -> float:
        return sorted(values)[min(len(values) - 1, int(p * len(values)))] * 1000

    print(
        f"{len(arrivals)} subscribers connected in {connected:.1f} s; {len(sent)} chunks "
        f"committed {args.gap * 1000:.0f} ms apart"
    )
    print(f"  received {pairs - missing} of {pairs} (subscriber, chunk) updates")
    for label, values in (
        ("after the process answer", late_from_answer),
        ("after the process request", late_from_request),
    ):
        print(
            f"  arrival {label}: p50 {q(values, 0.5):.0f} ms, p99 {q(values, 0.99):.0f} ms, "
            f"max {max(values) * 1000:.0f} ms; within 1 s: "
            f"{sum(v <= 1.0 for v in values) / pairs:.4f}"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("poll", help="GET /api/jobs/{id} against a bare Starlette JSON route")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("sse", help="many subscribers of one job's events")
    s.add_argument("--subscribers", type=int, default=1000)
    s.add_argument("--chunks", type=int, default=20)
    s.add_argument("--gap", type=float, default=0.25, help="seconds between chunks")
    args = parser.parse_args()
    if args.command == "poll":
        poll(args)
    else:
        asyncio.run(sse(args))


if __name__ == "__main__":
    main()

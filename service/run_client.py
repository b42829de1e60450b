"""``chunkmatch run``: match two CSV files through the HTTP API, with a terminal progress bar.

Talks to ``--server`` when given; otherwise starts a server in this process (embedded
PostgreSQL unless ``DATABASE_URL`` is set) on a free loopback port and stops it after.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import httpx
import uvicorn

from service.local_token import read_local_token
from service.settings import Settings

BAR_WIDTH = 30
MAX_BACKOFF_SECONDS = 30.0


class RunError(Exception):
    pass


def start_server_thread(
    settings: Settings, port: int, *, timeout: float = 120.0
) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve chunkmatch from a thread of this process on 127.0.0.1:``port``; wait until up."""
    from service.app import create_app

    config = uvicorn.Config(
        create_app(replace(settings, port=port)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"chunkmatch-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RunError("the local chunkmatch server did not start; see the log above")
        time.sleep(0.02)
    return server, thread


@contextlib.contextmanager
def local_server(settings: Settings) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = start_server_thread(settings, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_line(job: dict[str, Any]) -> str:
    pct = float(job.get("progressPercentage") or 0.0)
    filled = int(BAR_WIDTH * min(pct, 100.0) / 100.0)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    ips = job.get("itemsPerSecond")
    rate = f"{ips:,.0f} items/s" if ips else "-- items/s"
    return (
        f"[{bar}] {pct:5.1f}% {job['processedItems']:,}/{job['totalItems']:,} items | "
        f"{job['matchesFound']:,} matches ({job.get('matchRate') or 0:.1f}%) | {rate} | "
        f"ETA {format_eta(job.get('etaSeconds'))}"
    )


class ApiClient:
    def __init__(self, base_url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=120.0)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call, retried with backoff on network errors, 429 and 5xx."""
        delay = 0.5
        for attempt in range(1, 9):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == 8:
                    raise RunError(f"cannot reach the server: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            if response.status_code in (429, 500, 502, 503, 504) and attempt < 8:
                retry_after = response.headers.get("retry-after", "")
                wait = float(retry_after) if retry_after.isdigit() else delay
                time.sleep(min(wait, MAX_BACKOFF_SECONDS) * random.uniform(1.0, 1.2))
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            body = response.json()
            if response.status_code >= 400:
                error = body.get("error", {}) if isinstance(body, dict) else {}
                raise RunError(f"{method} {path}: {error.get('message', response.text)}")
            return body
        raise RunError(f"{method} {path}: the server kept failing")

    def download(self, path: str, out: Path) -> None:
        with self.http.stream("GET", path) as response, out.open("wb") as fh:
            if response.status_code >= 400:
                raise RunError(f"download failed with HTTP {response.status_code}")
            for part in response.iter_bytes():
                fh.write(part)


def drive(client: ApiClient, args: argparse.Namespace, stream: TextIO) -> dict[str, Any]:
    name = args.project_name or f"{Path(args.items).stem} vs {Path(args.catalog).stem}"
    project = client.call("POST", "/api/projects", json={"name": name})["project"]
    for kind, path, id_field in (
        ("catalog", args.catalog, args.catalog_id),
        ("items", args.items, args.item_id),
    ):
        data = Path(path).read_bytes()
        result = client.call(
            "POST",
            f"/api/projects/{project['id']}/{kind}",
            params={"idField": id_field, "encoding": args.encoding},
            content=data,
            headers={"Content-Type": "text/csv"},
        )
        print(f"uploaded {kind}: {result['total']:,} records", file=stream)
    config: dict[str, Any] = {}
    if args.item_fields:
        config["itemFields"] = args.item_fields
    if args.catalog_fields:
        config["catalogFields"] = args.catalog_fields
    if args.threshold is not None:
        config["threshold"] = args.threshold
    if args.chunk_size is not None:
        config["chunkSize"] = args.chunk_size
    job = client.call(
        "POST",
        "/api/jobs/create",
        json={"projectId": project["id"], "jobType": args.job_type, "config": config},
    )["job"]
    tty = stream.isatty()
    while job["status"] in ("pending", "processing"):
        job = client.call("POST", f"/api/jobs/{job['id']}/process")["job"]
        line = progress_line(job)
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=stream, flush=True)
    if tty:
        print(file=stream)
    if job["status"] != "completed":
        raise RunError(f"job {job['id']} ended {job['status']}: {job.get('error') or ''}")
    return job


def run_matching(args: argparse.Namespace, settings: Settings) -> int:
    for path in (args.items, args.catalog):
        if not Path(path).is_file():
            print(f"chunkmatch: no such file: {path}", file=sys.stderr)
            return 2
    server = contextlib.nullcontext(args.server) if args.server else local_server(settings)
    try:
        with server as base_url:
            token = args.token or settings.client_token or read_local_token(settings)
            client = ApiClient(base_url.rstrip("/"), token)
            started = time.monotonic()
            job = drive(client, args, sys.stderr)
            out = Path(args.out)
            client.download(f"/api/jobs/{job['id']}/matches?format=csv", out)
            elapsed = time.monotonic() - started
            print(
                f"done: {job['matchesFound']:,} of {job['totalItems']:,} items matched "
                f"({job['matchRate']:.1f}%) in {elapsed:.1f}s; matches written to {out}",
                file=sys.stderr,
            )
    except RunError as exc:
        print(f"chunkmatch: {exc}", file=sys.stderr)
        return 1
    return 0

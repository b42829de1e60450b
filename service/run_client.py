"""``chunkmatch run``: match two CSV files through the HTTP API, with a terminal progress bar.

Talks to ``--server`` when given; otherwise starts a server in this process (embedded
PostgreSQL unless ``DATABASE_URL`` is set) on a free loopback port, with its logs in a file
(the terminal keeps the bar and the summary), and stops it after. Everything that can be
checked here is checked before the first upload (``run_inputs``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import httpx
import uvicorn

from service.database import checked_data_dir
from service.local_token import NewLocalToken, read_local_token
from service.run_inputs import (
    InputError,
    InputFile,
    check_encoding,
    check_job,
    check_output,
    content_type,
    read_input,
)
from service.settings import Settings
from service.spreadsheet import MATCH_CSV_COLUMNS, match_csv_row

BAR_WIDTH = 30
MAX_BACKOFF_SECONDS = 30.0


class RunError(Exception):
    pass


def start_server_thread(
    settings: Settings, port: int, *, timeout: float = 120.0
) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve chunkmatch from a thread of this process on 127.0.0.1:``port``; wait until up."""
    from service.app import create_app
    from service.server import ChunkmatchServer

    config = uvicorn.Config(
        create_app(replace(settings, port=port)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the root logger's handlers, like ours
        access_log=False,  # ours is service/access_log.py
    )
    server = ChunkmatchServer(config)
    thread = threading.Thread(target=server.run, name=f"chunkmatch-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RunError("the local chunkmatch server did not start; see its log")
        time.sleep(0.02)
    return server, thread


@dataclass(frozen=True)
class LocalServer:
    url: str
    new_token: NewLocalToken | None  # a local admin token this start created


@contextlib.contextmanager
def logs_to_file(path: Path, *, log_format: str = "text") -> Iterator[None]:
    """Send every log record of this process to ``path`` (appended) instead of the terminal."""
    from service.log_format import formatter

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved
        handler.close()


@contextlib.contextmanager
def local_server(settings: Settings) -> Iterator[LocalServer]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = start_server_thread(settings, port)
    try:
        new_token = getattr(server.config.app.state, "new_local_token", None)
        yield LocalServer(f"http://127.0.0.1:{port}", new_token)
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
    def __init__(self, base_url: str, token: str, token_source: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=120.0)
        self.token_source = token_source

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
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.status_code == 401:
                raise RunError(
                    f"the server refused the API token ({self.token_source}): it is unknown "
                    "there or revoked; pass another with --token or CHUNKMATCH_TOKEN"
                )
            if response.status_code >= 400 or not isinstance(body, dict):
                error = body.get("error", {}) if isinstance(body, dict) else {}
                raise RunError(f"{method} {path}: {error.get('message', response.text[:300])}")
            return body
        raise RunError(f"{method} {path}: the server kept failing")


def choose_project(
    client: ApiClient, name: str, stream: TextIO, *, reuse: bool
) -> tuple[dict[str, Any], bool]:
    """With ``reuse`` (``--project NAME``), the newest project of this name the token may
    see, else a new one; (project, reused)."""
    same: list[dict[str, Any]] = []
    if reuse:
        projects = client.call("GET", "/api/projects", params={"limit": 1000})["projects"]
        same = [p for p in projects if p["name"] == name]
    if not same:
        project = client.call("POST", "/api/projects", json={"name": name})["project"]
        print(f"created project {name!r}", file=stream)
        return project, False
    project = same[0]
    others = f"; {len(same) - 1} older project(s) have this name too" if len(same) > 1 else ""
    print(
        f"using project {name!r} of {project['createdAt'][:16].replace('T', ' ')} "
        f"({project['itemCount']:,} items, {project['catalogCount']:,} catalog records"
        f"{others}); uploaded records replace those with the same id",
        file=stream,
    )
    return project, True


def upload(client: ApiClient, project_id: str, source: InputFile, stream: TextIO) -> str | None:
    """Upload one file; return the encoding the server read it with (when it says)."""
    params = {"idField": source.id_field}
    if source.encoding and source.columns is not None:  # a spreadsheet has no encoding
        params["encoding"] = source.encoding
    result = client.call(
        "POST",
        f"/api/projects/{project_id}/{source.kind}",
        params=params,
        content=source.data,
        headers={"Content-Type": content_type(source.path)},
    )
    used = result.get("encoding") or source.encoding
    read_as = f" (read as {used})" if used else ""
    print(f"uploaded {source.kind}: {result['total']:,} records{read_as}", file=stream)
    return used


def job_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.item_fields:
        config["itemFields"] = args.item_fields
    if args.catalog_fields:
        config["catalogFields"] = args.catalog_fields
    if args.threshold is not None:
        config["threshold"] = args.threshold
    if args.chunk_size is not None:
        config["chunkSize"] = args.chunk_size
    return config


def drive_job(client: ApiClient, job: dict[str, Any], stream: TextIO) -> dict[str, Any]:
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


MATCHES_PAGE = 1000  # the largest page GET /api/jobs/{id}/matches gives


def job_matches(client: ApiClient, job_id: str) -> list[dict[str, Any]]:
    """Every match of a job, as the API gives them (raw values, not spreadsheet cells)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": MATCHES_PAGE}
    while True:
        page = client.call("GET", f"/api/jobs/{job_id}/matches", params=params)
        found.extend(page["matches"])
        if not page.get("nextCursor"):
            return found
        params["cursor"] = page["nextCursor"]


def _same_text(shown: str | None, now: str | None) -> bool:
    return " ".join((shown or "").split()) == " ".join((now or "").split())


def project_matches(
    client: ApiClient,
    job: dict[str, Any],
    *,
    earlier_jobs: bool,
    items_now: dict[str, str] | None,
    catalog_now: dict[str, str] | None,
) -> dict[str, dict[str, Any]]:
    """The job's matches by item id, plus (for a reused project) those of the project's
    earlier completed jobs, whose items this job did not take again (newest first wins).

    An earlier match whose item or record text is no longer what this run uploaded is left
    out: the service counts it as stale (this job took its item again and did not match
    it). Texts are compared as this run's fields compose them; ``None``: not known here.
    """
    matches = {m["itemId"]: m for m in job_matches(client, job["id"])}
    if not earlier_jobs:
        return matches
    jobs = client.call("GET", "/api/jobs", params={"projectId": job["projectId"], "limit": 500})
    for other in jobs["jobs"]:
        if other["id"] == job["id"] or other["status"] != "completed":
            continue
        for m in job_matches(client, other["id"]):
            if m["itemId"] in matches:
                continue
            if items_now is not None and not _same_text(
                m["itemText"], items_now.get(m["itemId"], m["itemText"])
            ):
                continue
            if catalog_now is not None and not _same_text(
                m["catalogText"], catalog_now.get(m["catalogId"], m["catalogText"])
            ):
                continue
            matches[m["itemId"]] = m
    return matches


def write_matches(
    out: Path,
    items: list[tuple[str, str]] | None,
    matches: dict[str, dict[str, Any]],
    *,
    matched_only: bool,
) -> tuple[int, int, int]:
    """Write one row per item of the file (empty catalog columns when unmatched), or per
    match with ``matched_only``, as the service's CSV download writes them; replace ``out``
    only once it is complete. Return (rows written, items matched, items in the file)."""
    if items is None:  # the file was not read here: its matched items are all we know
        items = [(item_id, m["itemText"]) for item_id, m in matches.items()]
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    rows = matched = 0
    try:
        # with a BOM, as the service's own CSV downloads: spreadsheet programs then read UTF-8
        with partial.open("w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.writer(fh)
            writer.writerow(MATCH_CSV_COLUMNS)
            for item_id, text in items:
                m = matches.get(item_id)
                if m is not None:
                    matched += 1
                    writer.writerow(
                        match_csv_row(
                            item_id,
                            m["itemText"],
                            m["catalogId"],
                            m["catalogText"],
                            m["score"],
                            m["method"],
                            m["reason"],
                            reviewed=bool(m.get("reviewed")),
                        )
                    )
                    rows += 1
                elif not matched_only:
                    writer.writerow(match_csv_row(item_id, text, None, None, None, None, None))
                    rows += 1
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return rows, matched, len(items)


def find_token(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """The API token to send and where it came from; RunError saying what to do if none."""
    if args.token:
        return args.token, "--token"
    if settings.client_token:
        return settings.client_token, "CHUNKMATCH_TOKEN"
    local = read_local_token(settings)
    if local:
        return local, str(settings.local_token_file)
    raise RunError(
        "no API token: pass --token TOKEN, or set CHUNKMATCH_TOKEN, or run the service once "
        "with the embedded database (`scripts/serve` or `chunkmatch serve`) so it saves its "
        f"local admin token to {settings.local_token_file}; if your server keeps its data "
        "elsewhere, set CHUNKMATCH_DATA_DIR to that folder"
    )


def check_inputs(args: argparse.Namespace) -> tuple[InputFile, InputFile, Path]:
    """Everything checked before the first request: (items, catalog, output path)."""
    both = check_encoding(args.encoding, "--encoding")
    items, catalog = (
        read_input(
            kind,
            getattr(args, kind),
            side=side,
            encoding=check_encoding(getattr(args, f"{side}_encoding"), f"--{side}-encoding")
            or both,
            encoding_option=f"--{side}-encoding" if getattr(args, f"{side}_encoding") else None,
            id_field=getattr(args, f"{side}_id"),
            fields=getattr(args, f"{side}_fields"),
        )
        for kind, side in (("items", "item"), ("catalog", "catalog"))
    )
    check_job(args.job_type, args.threshold, args.chunk_size)
    return items, catalog, check_output(args.out)


def match_files(
    client: ApiClient,
    args: argparse.Namespace,
    items: InputFile,
    catalog: InputFile,
    out: Path,
    stream: TextIO,
) -> None:
    started = time.monotonic()
    name = args.project or f"{items.path.stem} vs {catalog.path.stem}"
    project, reused = choose_project(client, name, stream, reuse=args.project is not None)
    catalog_encoding = upload(client, project["id"], catalog, stream)
    items_encoding = upload(client, project["id"], items, stream)
    job = client.call(
        "POST",
        "/api/jobs/create",
        json={"projectId": project["id"], "jobType": args.job_type, "config": job_config(args)},
    )["job"]
    if reused:
        print(
            f"the job takes the project's {job['totalItems']:,} items not matched yet; "
            "those matched by its earlier jobs keep their matches",
            file=stream,
        )
    job = drive_job(client, job, stream)
    item_records = items.records(items_encoding)
    catalog_records = catalog.records(catalog_encoding) if reused else None
    matches = project_matches(
        client,
        job,
        earlier_jobs=reused,
        items_now=None if item_records is None else dict(item_records),
        catalog_now=None if catalog_records is None else dict(catalog_records),
    )
    rows, matched, total = write_matches(out, item_records, matches, matched_only=args.matched_only)
    share = f" ({100.0 * matched / total:.1f}%)" if total else ""
    what = (
        "matched items only" if args.matched_only else "unmatched ones with empty catalog columns"
    )
    print(
        f"done: {matched:,} of {total:,} items matched{share} in "
        f"{time.monotonic() - started:.1f}s; wrote {rows:,} rows to {out} ({what})",
        file=stream,
    )


def run_matching(args: argparse.Namespace, settings: Settings) -> int:
    stream = sys.stderr
    try:
        items, catalog, out = check_inputs(args)
        if args.server:
            token, source = find_token(args, settings)
            client = ApiClient(args.server.rstrip("/"), token, source)
            match_files(client, args, items, catalog, out, stream)
            return 0
        if settings.embedded:
            checked_data_dir(settings.data_dir)  # ConfigurationError: refused, before anything
        log_file = settings.run_log_file
        with logs_to_file(log_file, log_format=settings.log_format):
            print(f"starting a local chunkmatch server (its log: {log_file})", file=stream)
            try:
                with local_server(settings) as local:
                    if local.new_token is not None:
                        print(
                            f"created a local admin token, saved to {local.new_token.path}",
                            file=stream,
                        )
                    token, source = find_token(args, settings)
                    client = ApiClient(local.url, token, source)
                    match_files(client, args, items, catalog, out, stream)
            except RunError as exc:
                raise RunError(f"{exc} (the local server's log: {log_file})") from exc
    except InputError as exc:
        print(f"chunkmatch: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"chunkmatch: {exc}", file=sys.stderr)
        return 1
    return 0

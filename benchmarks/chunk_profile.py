"""Where a chunk's time goes in the service: the engine driven in-process, section by section.

Starts an embedded PostgreSQL in a temporary folder, uploads a synthetic N x N set through
the store, builds the index and peers, then runs the job's chunks one after the other with
``Engine.process_next_chunk`` and prints, per section, the median wall time and this
process's CPU time per chunk (PostgreSQL's own CPU is not in the latter), and optionally a
cProfile of the event-loop thread (the matching thread is timed as one section).

    .venv/bin/python benchmarks/chunk_profile.py --n 100000 --chunks 20 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import asyncpg  # noqa: E402
from synthetic import make_synthetic  # noqa: E402

from service import stage_runners  # noqa: E402
from service.catalog_index import IndexCache  # noqa: E402
from service.database import EmbeddedPostgres, create_pool, migrate  # noqa: E402
from service.engine import Engine  # noqa: E402
from service.match_processes import MatchProcesses  # noqa: E402
from service.stages import resolve_job  # noqa: E402
from service.store import Store, queries  # noqa: E402

wall: dict[str, list[float]] = defaultdict(list)
cpu: dict[str, list[float]] = defaultdict(list)


def timed(name: str, fn):  # noqa: ANN001, ANN201 - a benchmark's wrapper
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        w, c = time.perf_counter(), time.process_time()
        try:
            return await fn(*args, **kwargs)
        finally:
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)

    return wrapper


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (PostgreSQL's backends) so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def explain_insert(pool, job, rows) -> None:  # noqa: ANN001
    """EXPLAIN ANALYZE of the last chunk's matches inserted again (under other item ids),
    rolled back: where PostgreSQL spends the insert's time (triggers, indexes)."""
    columns = [list(c) for c in zip(*rows, strict=True)]
    columns[0] = [f"explain-{i}" for i in columns[0]]
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + queries["insert_matches"],
            uuid.UUID(job.id),
            uuid.UUID(job.project_id),
            1,
            999,
            *columns,
        )
        await tx.rollback()
    print("\n".join(r[0] for r in plan))


async def main(args: argparse.Namespace) -> None:
    catalog, items, _ = make_synthetic(args.catalog or args.n, args.n, seed=1)
    folder = Path(tempfile.mkdtemp(prefix="chunkmatch-profile-"))
    embedded = EmbeddedPostgres(folder)
    dsn = embedded.start()
    try:
        pool = await create_pool(dsn, max_size=4)
        async with pool.acquire() as conn:
            await migrate(conn)
        store = Store(pool)
        processes = MatchProcesses(args.processes, max_records=10**9, keep_indexes=2, keep_peers=2)
        processes.start()
        engine = Engine(store, IndexCache(max_entries=2, processes=processes), lease_seconds=60.0)
        project = await store.create_project("profile", owner="bench")
        pid = uuid.UUID(project.id)
        for kind, rows in (("catalog", catalog), ("items", items)):
            records = [(r["id"], json.dumps(r, separators=(",", ":"))) for r in rows]
            await store.upload_records(pid, kind, records, list(rows[0]))
        project = await store.get_project(pid, owner=None)
        stages, config = resolve_job("enhanced", {}, project)
        job = await store.create_job(
            pid,
            job_type="enhanced",
            config=config,
            stages=stages,
            stage_name="Enhanced Matching",
            chunk_size=config["chunkSize"],
            priority=5,
            max_attempts=3,
        )
        await engine._job_index(job, with_peers=True)  # preparation is not profiled
        while args.processes and not processes.matchers(*engine._index_keys(job)):
            await asyncio.sleep(0.05)  # the helpers' copies too

        by_text = {text: name for name, text in queries.items()}
        for method in ("fetch", "fetchrow", "fetchval", "execute"):
            original = getattr(asyncpg.Connection, method)

            async def query(self, sql, *a, __original=original, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
                w, c = time.perf_counter(), time.process_time()
                try:
                    return await __original(self, sql, *a, **k)
                finally:
                    name = f"  sql {by_text.get(sql, sql[:20])}"
                    wall[name].append(time.perf_counter() - w)
                    cpu[name].append(time.process_time() - c)

            setattr(asyncpg.Connection, method, query)
        store.chunk_items = timed("read items", store.chunk_items)
        store.commit_chunk = timed("commit", store.commit_chunk)
        store.claim_chunk = timed("claim", store.claim_chunk)
        store.get_job = timed("get job", store.get_job)
        runner = stage_runners.RUNNERS["enhanced"]
        last_rows: list = []

        async def keeping(ctx, items):  # noqa: ANN001, ANN202
            outcome = await runner(ctx, items)
            last_rows[:] = outcome.matches
            return outcome

        stage_runners.RUNNERS["enhanced"] = timed("stage (match + rows)", keeping)
        backends = [
            r["pid"]
            for r in await pool.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            )
        ]
        profiler = cProfile.Profile() if args.profile else None
        done = 0
        while done < args.chunks:
            if profiler:
                profiler.enable()
            w, c, pg = time.perf_counter(), time.process_time(), _cpu_seconds(backends)
            outcome = await engine.process_next_chunk(uuid.UUID(job.id))
            wall["whole chunk"].append(time.perf_counter() - w)
            cpu["whole chunk"].append(time.process_time() - c)
            wall["postgres backends"].append(0.0)
            cpu["postgres backends"].append(_cpu_seconds(backends) - pg)
            if profiler:
                profiler.disable()
            if outcome is None or not outcome.processed:
                break
            done += 1
        records = args.catalog or args.n
        print(f"{done} chunks of {config['chunkSize']} items, {args.n:,} x {records:,} records")
        print(
            f"{'section':24} {'wall ms':>9} {'CPU ms':>9} {'mean CPU':>9} "
            f"{'first 10%':>9} {'last 10%':>9}  (per chunk)"
        )
        tenth = max(1, done // 10)
        for name in wall:
            if len(wall[name]) < done // 2:
                continue
            series = wall[name]
            print(
                f"{name:24} {1000 * statistics.median(series):9.1f} "
                f"{1000 * statistics.median(cpu[name]):9.1f} "
                f"{1000 * statistics.mean(cpu[name]):9.1f} "
                f"{1000 * statistics.median(series[:tenth]):9.1f} "
                f"{1000 * statistics.median(series[-tenth:]):9.1f}"
            )
        print(
            "(wall and CPU: medians; CPU is this process's, the backends' is PostgreSQL's;"
            " first/last 10 %: median wall of the first and last tenth of the chunks)"
        )
        if args.explain:
            await explain_insert(pool, job, last_rows)
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
        await pool.close()
        processes.close()
    finally:
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100000)
    parser.add_argument("--catalog", type=int, help="catalog records (default: --n)")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument(
        "--processes", type=int, default=0, help="helper processes matching a share of chunks"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN the matches insert")
    parser.add_argument("--top", type=int, default=25)
    asyncio.run(main(parser.parse_args()))

"""The `ai` stage through the real service against a fake OpenAI-compatible server whose
latency we set: wall time of a 10-item chunk, requests and tokens per item, cache re-run.

    .venv/bin/python benchmarks/slow_stages.py [--latency 0.3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.database import EmbeddedPostgres  # noqa: E402
from service.run_client import local_server  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from datasets import ABT_BUY, DATA_DIR, read_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--items", type=int, default=100)
    args = parser.parse_args()
    fake = FakeOpenAI()
    fake.start()
    fake.latency = args.latency
    folder = Path(tempfile.mkdtemp(prefix="chunkmatch-slow-bench-"))
    pg = EmbeddedPostgres(folder)
    dsn = pg.start()
    settings = replace(
        Settings.from_env({}),
        database_url=dsn,
        openai_api_key="sk-bench",
        openai_base_url=f"{fake.url}/v1",
        llm_model="fake-model",
    )
    try:
        import asyncio

        from service.database import create_pool
        from service.store import Store

        async def token() -> str:
            pool = await create_pool(dsn, max_size=2)
            try:
                return (await Store(pool).create_token("bench", is_admin=False))[0]
            finally:
                await pool.close()

        with (
            local_server(settings) as url,
            httpx.Client(base_url=url, timeout=120) as c,
        ):
            c.headers["Authorization"] = f"Bearer {asyncio.run(token())}"
            spec = ABT_BUY
            rows_items = read_rows(DATA_DIR / spec.folder / spec.items_file)[: args.items]
            rows_catalog = read_rows(DATA_DIR / spec.folder / spec.catalog_file)
            for name in ("first", "rerun"):
                pid = c.post("/api/projects", json={"name": name}).json()["project"]["id"]
                c.post(f"/api/projects/{pid}/catalog", json={"records": rows_catalog})
                c.post(f"/api/projects/{pid}/items", json={"records": rows_items})
                job = c.post(
                    "/api/jobs/create",
                    json={
                        "projectId": pid,
                        "jobType": "ai",
                        "config": {"catalogFields": ["name", "manufacturer"]},
                    },
                ).json()["job"]
                before = fake.counters.requests
                chunk_times = []
                started = time.perf_counter()
                while job["status"] in ("pending", "processing"):
                    t = time.perf_counter()
                    job = c.post(f"/api/jobs/{job['id']}/process").json()["job"]
                    chunk_times.append(time.perf_counter() - t)
                elapsed = time.perf_counter() - started
                u = job["usage"]
                print(
                    f"{name}: {job['totalItems']} items in {len(chunk_times)} chunks of "
                    f"{job['chunkSize']}, {elapsed:.2f}s; chunk wall median "
                    f"{sorted(chunk_times)[len(chunk_times) // 2]:.2f}s max {max(chunk_times):.2f}s "
                    f"(provider latency {args.latency:.2f}s); requests/item {u['requestsPerItem']:.2f}, "
                    f"tokens/item {u['tokensPerItem']:.0f}, cache hits {u['cacheHits']}, "
                    f"new provider requests {fake.counters.requests - before}, "
                    f"matches {job['matchesFound']}"
                )
    finally:
        fake.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

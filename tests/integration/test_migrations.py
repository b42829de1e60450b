"""Migrating from empty gives the schema the code and the README's monitoring queries expect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

import service
from service.database import migrate

PUBLIC_COLUMNS = {
    "matching_jobs": {
        "id",
        "project_id",
        "job_type",
        "status",
        "current_stage",
        "current_stage_name",
        "total_items",
        "processed_items",
        "progress_percentage",
        "matches_found",
        "match_rate",
        "items_per_second",
        "eta_seconds",
        "estimated_completion",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
        "error",
        "eta_error_10",
        "eta_error_50",
        "eta_error_90",
    },
    "job_chunks": {
        "job_id",
        "seq",
        "stage",
        "items",
        "matches",
        "started_at",
        "finished_at",
        "duration_ms",
        "eta_seconds",
        "processed_items",
        "prepare_ms",
    },
    "matches": {"job_id", "item_id", "catalog_id", "score", "method"},
    "webhook_deliveries": {
        "id",
        "webhook_id",
        "event_id",
        "job_id",
        "event_type",
        "status",
        "attempts",
        "status_code",
        "error",
        "next_attempt_at",
        "created_at",
        "last_attempt_at",
        "delivered_at",
    },
}


async def test_public_monitoring_columns_exist(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        for table, expected in PUBLIC_COLUMNS.items():
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
            )
            assert expected <= {r["column_name"] for r in rows}, table
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_once(db_dsn: str) -> None:
    conns = [await asyncpg.connect(db_dsn) for _ in range(4)]
    try:
        await conns[0].execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        names = [n for batch in applied for n in batch]
        files = sorted(p.name for p in (Path(service.__file__).parent / "migrations").glob("*.sql"))
        assert sorted(names) == files  # each applied exactly once, by one of the processes
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(files)
    finally:
        for c in conns:
            await c.close()

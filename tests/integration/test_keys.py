"""The bulk tables' keys to their parents (checked once per statement, migration 014) hold
as foreign keys do: no row without its parent, a parent's delete takes its rows along, keys
do not change, and a delete racing an insert leaves no orphan."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest


async def _project(conn: asyncpg.Connection) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO projects (name, owner) VALUES ('keys', 'owner') RETURNING id"
    )


async def _job(conn: asyncpg.Connection, project: uuid.UUID) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO matching_jobs (project_id, job_type, stages, current_stage_name, chunk_size)"
        " VALUES ($1, 'enhanced', '{enhanced}', 'Enhanced Matching', 10) RETURNING id",
        project,
    )


CHILDREN = {
    "catalog_records": "INSERT INTO catalog_records (project_id, record_id, data)"
    " SELECT $1, g::text, '{}' FROM generate_series(1, $2) g",
    "items": "INSERT INTO items (project_id, item_id, data)"
    " SELECT $1, g::text, '{}' FROM generate_series(1, $2) g",
    "job_items": "INSERT INTO job_items (job_id, ord, item_id)"
    " SELECT $1, g, g::text FROM generate_series(1, $2) g",
    "matches": "INSERT INTO matches"
    " (job_id, project_id, item_id, catalog_id, score, method, stage, chunk_seq)"
    " SELECT $1, gen_random_uuid(), g::text, g::text, 0.5, 'fuzzy', 1, 1"
    " FROM generate_series(1, $2) g",
}


@pytest.mark.parametrize("table", sorted(CHILDREN))
async def test_a_row_needs_its_parent(db_dsn: str, table: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        project = await _project(conn)
        parent = project if table in ("catalog_records", "items") else await _job(conn, project)
        await conn.execute(CHILDREN[table], parent, 3)
        with pytest.raises(asyncpg.ForeignKeyViolationError, match=table):
            await conn.execute(CHILDREN[table], uuid.uuid4(), 5)
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 3  # noqa: S608
        key = "project_id" if table in ("catalog_records", "items") else "job_id"
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="cannot be changed"):
            await conn.execute(f"UPDATE {table} SET {key} = $1", uuid.uuid4())  # noqa: S608
    finally:
        await conn.close()


async def test_deleting_a_project_deletes_everything_under_it(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        kept, gone = await _project(conn), await _project(conn)
        for project in (kept, gone):
            job = await _job(conn, project)
            await conn.execute(CHILDREN["catalog_records"], project, 4)
            await conn.execute(CHILDREN["items"], project, 4)
            await conn.execute(CHILDREN["job_items"], job, 4)
            await conn.execute(CHILDREN["matches"], job, 4)
        await conn.execute("DELETE FROM projects WHERE id = $1", gone)
        for table in CHILDREN:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 4, table  # noqa: S608
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="cannot be changed"):
            await conn.execute("UPDATE projects SET id = gen_random_uuid()")
    finally:
        await conn.close()


async def test_a_delete_racing_an_insert_leaves_no_orphan(db_dsn: str) -> None:
    writer, deleter = await asyncpg.connect(db_dsn), await asyncpg.connect(db_dsn)
    try:
        project = await _project(writer)
        tx = writer.transaction()
        await tx.start()
        await writer.execute(CHILDREN["items"], project, 100)  # holds the project FOR KEY SHARE
        delete = asyncio.create_task(deleter.execute("DELETE FROM projects WHERE id = $1", project))
        await asyncio.sleep(0.3)
        assert not delete.done()  # it waits for the inserting transaction
        await tx.commit()
        await asyncio.wait_for(delete, 10)
        assert await writer.fetchval("SELECT count(*) FROM items") == 0

        # the other way round: the insert after the delete committed fails
        project = await _project(writer)
        tx = deleter.transaction()
        await tx.start()
        await deleter.execute("DELETE FROM projects WHERE id = $1", project)
        insert = asyncio.create_task(writer.execute(CHILDREN["items"], project, 10))
        await asyncio.sleep(0.3)
        assert not insert.done()
        await tx.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await asyncio.wait_for(insert, 10)
        assert await writer.fetchval("SELECT count(*) FROM items") == 0
    finally:
        await writer.close()
        await deleter.close()

"""Shared fixtures: a real PostgreSQL for every test, and a live server over real HTTP.

PostgreSQL is ``DATABASE_URL`` when set (the tests create and drop their own databases
on it), else an embedded server in a temporary folder. Migrations run once into a
template database; each test that needs a clean database gets a copy of it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import uvicorn

from service.database import EmbeddedPostgres, create_pool, migrate
from service.run_client import start_server_thread
from service.settings import Settings
from service.store import Store

TEMPLATE_DB = f"chunkmatch_template_{os.getpid()}"
TEST_CRON_SECRET = "test-cron-secret-0123456789abcdef0123456789"
# servers under test have no built-in worker unless a test asks for one (serve_worker=True):
# most tests advance jobs chunk by chunk with /process and check exactly what each did. Nor
# matching helper processes (each would copy every index its server builds), except the
# shared live server, which runs with the default's one
TEST_ENV = {"CHUNKMATCH_SERVE_WORKER": "off", "CHUNKMATCH_MATCH_PROCESSES": "0"}


def dsn_for(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="chunkmatch-test-pg-"))
    embedded = EmbeddedPostgres(folder)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)  # a run's data is not kept for the next


async def _admin(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


@pytest.fixture(scope="session")
async def template_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    admin = await _admin(pg_server_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
    await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    dsn = dsn_for(pg_server_dsn, TEMPLATE_DB)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    try:
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.close()


async def make_database(pg_server_dsn: str, prefix: str = "t") -> str:
    name = f"chunkmatch_{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await _admin(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    finally:
        await admin.close()
    return name


async def drop_database(pg_server_dsn: str, name: str) -> None:
    admin = await _admin(pg_server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_dsn(pg_server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = await make_database(pg_server_dsn)
    try:
        yield dsn_for(pg_server_dsn, name)
    finally:
        await drop_database(pg_server_dsn, name)


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[Store]:
    pool = await create_pool(db_dsn, max_size=8)
    try:
        yield Store(pool)
    finally:
        await pool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    dsn: str
    settings: Settings
    token: str  # owner "alice"
    other_token: str  # owner "bob"
    admin_token: str

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


async def make_tokens(dsn: str, *specs: tuple[str, bool]) -> list[str]:
    pool = await create_pool(dsn, max_size=2)
    try:
        store = Store(pool)
        return [(await store.create_token(owner, is_admin=admin))[0] for owner, admin in specs]
    finally:
        await pool.close()


def run_server_in_thread(settings: Settings, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    return start_server_thread(settings, port, timeout=30)


@pytest.fixture(scope="session")
async def live_server(pg_server_dsn: str, template_dsn: str) -> AsyncIterator[LiveServer]:
    """A real uvicorn serving chunkmatch on a free loopback port, with its own database."""
    name = await make_database(pg_server_dsn, "live")
    dsn = dsn_for(pg_server_dsn, name)
    settings = replace(
        Settings.from_env(TEST_ENV),
        database_url=dsn,
        lease_seconds=10.0,
        cron_secret=TEST_CRON_SECRET,
        rate_per_second=0.0,  # many tests share its tokens; test_limits.py has its own server
        match_processes=1,
    )
    port = free_port()
    server, thread = await asyncio.to_thread(run_server_in_thread, settings, port)
    alice, bob, admin = await make_tokens(dsn, ("alice", False), ("bob", False), ("root", True))
    try:
        yield LiveServer(
            url=f"http://127.0.0.1:{port}",
            dsn=dsn,
            settings=settings,
            token=alice,
            other_token=bob,
            admin_token=admin,
        )
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        await drop_database(pg_server_dsn, name)


@asynccontextmanager
async def server_with(pg_server_dsn: str, **overrides: Any) -> AsyncIterator[LiveServer]:
    """A live server of its own (own database, tokens) with some settings changed."""
    name = await make_database(pg_server_dsn, "own")
    dsn = dsn_for(pg_server_dsn, name)
    alice, bob, admin = await make_tokens(dsn, ("alice", False), ("bob", False), ("root", True))
    settings = replace(Settings.from_env(TEST_ENV), database_url=dsn, **overrides)
    port = free_port()
    server, thread = await asyncio.to_thread(run_server_in_thread, settings, port)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", dsn, settings, alice, bob, admin)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        await drop_database(pg_server_dsn, name)

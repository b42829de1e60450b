"""The Starlette application: routes, error handlers and the lifespan that owns resources."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.catalog_index import IndexCache
from service.database import EmbeddedPostgres, create_pool, migrate
from service.engine import Engine
from service.errors import EXCEPTION_HANDLERS
from service.routes.health import Health
from service.routes.jobs import (
    JobCancel,
    JobCreate,
    JobDetail,
    JobMatches,
    JobPause,
    JobProcess,
    JobResume,
    JobRetry,
    Jobs,
)
from service.routes.operations import JobsCleanup, JobsCron, JobsStatus
from service.routes.projects import CatalogUpload, ItemsUpload, ProjectDetail, Projects
from service.settings import Settings
from service.store import Store

logger = logging.getLogger("chunkmatch")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def index_page(request):
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
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
                app.state.store = store
                app.state.engine = Engine(
                    store,
                    IndexCache(max_entries=settings.index_cache_size),
                    lease_seconds=settings.lease_seconds,
                    retry_base_seconds=settings.retry_base_seconds,
                    retry_max_seconds=settings.retry_max_seconds,
                )
                logger.info(
                    "chunkmatch ready (%s)", "embedded PostgreSQL" if embedded else "DATABASE_URL"
                )
                yield
            finally:
                await pool.close()
        finally:
            if embedded is not None:
                embedded.stop()

    routes = [
        Route("/", index_page, methods=["GET"]),
        Route("/api/health", Health),
        Route("/api/projects", Projects),
        Route("/api/projects/{project_id}", ProjectDetail),
        Route("/api/projects/{project_id}/catalog", CatalogUpload),
        Route("/api/projects/{project_id}/items", ItemsUpload),
        Route("/api/jobs", Jobs),
        Route("/api/jobs/create", JobCreate),
        Route("/api/jobs/process", JobsCron),
        Route("/api/jobs/status", JobsStatus),
        Route("/api/jobs/cleanup", JobsCleanup),
        Route("/api/jobs/{job_id}", JobDetail),
        Route("/api/jobs/{job_id}/process", JobProcess),
        Route("/api/jobs/{job_id}/cancel", JobCancel),
        Route("/api/jobs/{job_id}/pause", JobPause),
        Route("/api/jobs/{job_id}/resume", JobResume),
        Route("/api/jobs/{job_id}/retry", JobRetry),
        Route("/api/jobs/{job_id}/matches", JobMatches),
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.settings = settings
    return app

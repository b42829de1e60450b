"""The Starlette application: routes, error handlers and the lifespan that owns resources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service import access_log
from service.access_log import AccessLog
from service.auth import TokenAuth
from service.errors import EXCEPTION_HANDLERS
from service.headers import SecurityHeaders
from service.local_token import ensure_local_token
from service.notify import Notifications
from service.openapi import openapi_document
from service.routes.events import JobEvents, JobEventsTicket
from service.routes.health import Health
from service.routes.jobs import (
    JobCancel,
    JobChunks,
    JobCreate,
    JobDetail,
    JobFailedItems,
    JobItemCandidates,
    JobMatches,
    JobPause,
    JobProcess,
    JobResume,
    JobRetry,
    JobRetryFailed,
    Jobs,
)
from service.routes.metrics import Metrics
from service.routes.operations import JobsCleanup, JobsCron, JobsStatus
from service.routes.projects import (
    CatalogRecord,
    CatalogUpload,
    ItemRecord,
    ItemsUpload,
    ProjectDetail,
    Projects,
)
from service.routes.review import JobReview
from service.routes.webhooks import WebhookDeliveries, WebhookDetail, Webhooks
from service.runtime import open_runtime
from service.settings import Settings
from service.worker import Worker

LISTEN_AT_START_SECONDS = 5.0  # how long start-up waits for the LISTEN connection


def _static_dir() -> Path:
    """The page and the JS client: ``service/static`` in an installed package, else the
    repository's ``static/`` (a checkout, or an editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / "static"
    return packaged if (packaged / "index.html").is_file() else here.parent / "static"


STATIC_DIR = _static_dir()


async def index_page(request):
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.store = runtime.store
            app.state.engine = runtime.engine
            app.state.providers = runtime.providers
            # shown by `chunkmatch serve` once the service answers (see cli._serve)
            app.state.new_local_token = await ensure_local_token(runtime.store, settings)
            access_log.install()
            notifications = Notifications(
                runtime.store, token_cache_seconds=settings.token_cache_seconds
            )
            app.state.notifications = notifications
            await notifications.start()
            await notifications.wait_listening(LISTEN_AT_START_SECONDS)
            # the built-in worker: the same slots as `chunkmatch worker`, in this process
            worker = Worker(runtime, notifications=notifications) if settings.serve_worker else None
            worker_run = asyncio.create_task(worker.run(), name="worker") if worker else None

            def begin_shutdown() -> None:
                """SIGTERM: end the event streams, start no new chunk (service.server)."""
                notifications.close_streams()
                if worker is not None:
                    worker.stopping.set()

            app.state.begin_shutdown = begin_shutdown
            try:
                yield
            finally:
                begin_shutdown()
                if worker_run is not None:
                    await worker_run
                await notifications.stop()

    routes = [
        Route("/", index_page, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
        Route("/metrics", Metrics),
        Route("/api/health", Health),
        Route("/api/projects", Projects),
        Route("/api/projects/{project_id}", ProjectDetail),
        Route("/api/projects/{project_id}/catalog", CatalogUpload),
        Route("/api/projects/{project_id}/items", ItemsUpload),
        Route("/api/projects/{project_id}/catalog/{record_id}", CatalogRecord),
        Route("/api/projects/{project_id}/items/{record_id}", ItemRecord),
        Route("/api/projects/{project_id}/webhooks", Webhooks),
        Route("/api/projects/{project_id}/webhooks/{webhook_id}", WebhookDetail),
        Route("/api/projects/{project_id}/webhooks/{webhook_id}/deliveries", WebhookDeliveries),
        Route("/api/jobs", Jobs),
        Route("/api/jobs/create", JobCreate),
        Route("/api/jobs/process", JobsCron),
        Route("/api/jobs/status", JobsStatus),
        Route("/api/jobs/cleanup", JobsCleanup),
        Route("/api/jobs/{job_id}", JobDetail),
        Route("/api/jobs/{job_id}/process", JobProcess),
        Route("/api/jobs/{job_id}/events", JobEvents),
        Route("/api/jobs/{job_id}/events-ticket", JobEventsTicket),
        Route("/api/jobs/{job_id}/cancel", JobCancel),
        Route("/api/jobs/{job_id}/pause", JobPause),
        Route("/api/jobs/{job_id}/resume", JobResume),
        Route("/api/jobs/{job_id}/retry", JobRetry),
        Route("/api/jobs/{job_id}/retry-failed", JobRetryFailed),
        Route("/api/jobs/{job_id}/failed-items", JobFailedItems),
        Route("/api/jobs/{job_id}/chunks", JobChunks),
        Route("/api/jobs/{job_id}/matches", JobMatches),
        Route("/api/jobs/{job_id}/items/{item_id}/candidates", JobItemCandidates),
        Route("/api/jobs/{job_id}/review", JobReview),
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    # outermost: it times and logs every answer, the refusals of the middleware below too
    middleware = [Middleware(AccessLog, routes=routes), Middleware(SecurityHeaders)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    middleware.append(
        Middleware(TokenAuth, rate=settings.rate_per_second, burst=settings.rate_burst)
    )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.new_local_token = None
    return app

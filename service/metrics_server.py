"""``chunkmatch worker --metrics-port``: the worker's ``GET /metrics`` (the same route, auth
and jobs gauge as ``chunkmatch serve``'s), on a small HTTP server of its own beside the
worker's slots. The worker serves nothing else, and stops serving when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from service.errors import EXCEPTION_HANDLERS
from service.exceptions import ConfigurationError
from service.headers import SecurityHeaders
from service.routes.metrics import Metrics
from service.runtime import Runtime

logger = logging.getLogger("chunkmatch.worker")


class _MetricsServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # SIGTERM is the worker's: it stops its slots, then this server


def metrics_app(runtime: Runtime) -> Starlette:
    app = Starlette(
        routes=[Route("/metrics", Metrics)],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.settings = runtime.settings
    app.state.store = runtime.store
    return app


def bind_metrics_socket(host: str, port: int) -> socket.socket:
    """The listening socket of the worker's metrics, bound before the worker starts: a
    port in use is a clear error at start-up (ConfigurationError: exit code 2)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve the worker's metrics on {host}:{port} ({exc.strerror or exc}); "
            "choose another --metrics-port or CHUNKMATCH_WORKER_METRICS_PORT"
        ) from exc


async def serve_metrics(runtime: Runtime, sock: socket.socket, *, stopping: asyncio.Event) -> None:
    """Serve ``/metrics`` on the bound ``sock`` until ``stopping`` is set."""
    host, port = sock.getsockname()[:2]
    server = _MetricsServer(
        uvicorn.Config(
            metrics_app(runtime),
            lifespan="off",
            log_config=None,
            access_log=False,
            log_level=runtime.settings.log_level.lower(),
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="worker-metrics")
    stopped = asyncio.create_task(stopping.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if server.started:
        logger.info("worker metrics were served on http://%s:%d/metrics", host, port)
    server.should_exit = True
    stopped.cancel()
    await serving

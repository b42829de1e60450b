"""uvicorn's server, telling the app the moment shutdown begins.

uvicorn waits for open connections before the lifespan's shutdown runs; an event stream
never closes by itself, and the built-in worker would go on starting chunks. On SIGTERM,
Ctrl+C or ``should_exit``, :class:`ChunkmatchServer` first calls the app's
``state.begin_shutdown`` (set by its lifespan): streams end at once and the worker starts
no new chunk; then uvicorn stops as before.
"""

from __future__ import annotations

import socket

import uvicorn


class ChunkmatchServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        begin = getattr(getattr(app, "state", None), "begin_shutdown", None)
        if callable(begin):
            begin()
        await super().shutdown(sockets)

"""Server-Sent Events of one job: its state on connect, then each new committed state.

Frames are ``id: <version>`` / ``event: progress`` / ``data: <the job's JSON>``; a comment
line keeps proxies from closing a quiet stream; the stream ends after a finished job's
event (or at once when the client has already seen it, per ``Last-Event-ID``). A stream
holds no database connection: it waits on its :class:`~service.notify.Subscription`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.types import Receive, Scope, Send

from service.notify import JobSnapshot, Notifications, Subscription

KEEPALIVE_FRAME = b": keep-alive\n\n"


def progress_frame(snapshot: JobSnapshot) -> bytes:
    return b"id: %d\nevent: progress\ndata: " % snapshot.version + snapshot.job_json() + b"\n\n"


async def job_frames(
    notifications: Notifications,
    sub: Subscription,
    first: JobSnapshot,
    *,
    seen_version: int | None,
    keepalive_seconds: float,
) -> AsyncIterator[bytes]:
    """The frames of one stream; unsubscribes when it ends (or is closed)."""
    sent = -1 if seen_version is None else seen_version
    try:
        if first.finished and first.version <= sent:
            return  # the client saw the end already
        snapshot: JobSnapshot | None = first
        while True:
            if snapshot is not None and snapshot.version > sent:
                yield progress_frame(snapshot)
                sent = snapshot.version
                if snapshot.finished:
                    return
            if sub.closed:
                return
            snapshot = await sub.next(keepalive_seconds)
            if snapshot is None and not sub.closed:
                yield KEEPALIVE_FRAME
    finally:
        notifications.unsubscribe(sub)


class EventStream:
    """An ASGI response streaming ``frames`` as ``text/event-stream`` until they end or the
    client goes away (whichever first; the frames' generator is closed either way)."""

    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        self.frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
                ],
            }
        )
        try:
            async with anyio.create_task_group() as group:

                async def pump() -> None:
                    try:
                        async for frame in self.frames:
                            await send(
                                {"type": "http.response.body", "body": frame, "more_body": True}
                            )
                        await send({"type": "http.response.body", "body": b""})
                    except OSError:
                        pass  # the client is gone
                    finally:
                        group.cancel_scope.cancel()

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(pump)
                group.start_soon(watch_disconnect)
        finally:
            await self.frames.aclose()  # type: ignore[attr-defined]

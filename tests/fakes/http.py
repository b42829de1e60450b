"""A minimal HTTP/1.1 server on 127.0.0.1, in its own thread, for fakes that must misbehave.

Built on ``asyncio.start_server`` rather than uvicorn because the faults under test
live below the application: a connection closed without a response, a body cut
short of its ``Content-Length``, a request left hanging. Keep-alive is supported, as
real clients pool connections.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

STATUS_PHRASES = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    411: "Length Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

_START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Reply:
    """A response; with ``truncate_at`` only that many body bytes are sent, then the socket closes."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    truncate_at: int | None = None


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering."""


@dataclass(frozen=True)
class Hang:
    """Answer nothing for ``seconds`` (longer than the client waits), then close."""

    seconds: float


Outcome = Reply | Drop | Hang


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeHTTPServer:
    """Subclasses implement :meth:`handle`; ``start()`` returns once the port is listening."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def handle(self, request: Request) -> Outcome:
        raise NotImplementedError

    def start(self) -> str:
        port = free_port()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(port)),
            name=f"{type(self).__name__}-{port}",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_SECONDS) or self._error is not None:
            raise RuntimeError(f"{type(self).__name__} did not start") from self._error
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT_SECONDS)

    async def _serve(self, port: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._connection(reader, writer)
            except asyncio.CancelledError:
                pass  # the server is stopping; ending quietly keeps asyncio from logging it
            finally:
                connections.discard(task)

        try:
            server = await asyncio.start_server(on_connect, "127.0.0.1", port)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        async with server:
            await self._stopping.wait()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                try:
                    outcome = await self.handle(request)
                except Exception as exc:  # a bug in the fake: say so instead of dropping
                    message = f"fake server error: {type(exc).__name__}: {exc}"
                    outcome = Reply(500, message.encode(), "text/plain")
                if isinstance(outcome, Drop):
                    return
                if isinstance(outcome, Hang):
                    await asyncio.sleep(outcome.seconds)
                    return
                writer.write(_encode(outcome))
                await writer.drain()
                if outcome.truncate_at is not None:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ValueError("chunked request bodies are not supported by the fake")
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    parts = urlsplit(target)
    return Request(method, parts.path, parse_qs(parts.query), headers, body)


def _encode(reply: Reply) -> bytes:
    phrase = STATUS_PHRASES.get(reply.status, "Status")
    headers = {
        "content-type": reply.content_type,
        "content-length": str(len(reply.body)),
        **reply.headers,
    }
    head = f"HTTP/1.1 {reply.status} {phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    body = reply.body if reply.truncate_at is None else reply.body[: reply.truncate_at]
    return head.encode("latin-1") + b"\r\n" + body
